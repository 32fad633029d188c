"""The gate at the edges of time and place: exact window edges per state, DST in every US zone,
leads whose area code, ZIP code and state disagree or are unusable, caps at their boundary,
revoked consent, list freshness across the date line, and malformed rule data.

UTC inputs; the comments give the local time. Expected windows are written out from the research
(shared/research/rules.md section 2), not read from the rule data, so a wrong row is caught.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance_rules.holidays import easter_sunday
from compliance_rules.location import centroids, locate_zip, zones_for_state
from compliance_rules.model import (
    US_STATE_CODES,
    ConsentKind,
    ConsentRecord,
    Decision,
    DialMode,
    ListVersions,
    Purpose,
)
from compliance_rules.numbers import npa_states, parse_number
from compliance_rules.policy import CampaignPolicy
from compliance_rules.ruleset import DEFAULT_RULES_PATH, RuleDataError, parse_rulebook
from tests.compliance.helpers import check, codes, fresh_versions, utc

pytestmark = pytest.mark.timeout(120)

TOLL_FREE = "800-555-0142"  # no zone or state of its own: the ZIP code alone places the lead
NY = "212-555-0142"
SECOND = timedelta(seconds=1)
MICROSECOND = timedelta(microseconds=1)
MARGIN = timedelta(minutes=3)  # CampaignPolicy's default


# Written consent on file since 2020: Connecticut's consent rule then stays out of window tests.
CONSENTED = (ConsentRecord(ConsentKind.PEWC, datetime(2020, 1, 1, tzinfo=UTC)),)


def placed(zip_code: str, at: datetime) -> Decision:
    """A toll-free number (no zone or state of its own) whose lead's ZIP code alone places it."""
    return check(TOLL_FREE, at, zip_code=zip_code, consents=CONSENTED)


def at_local(zone: str, day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A wall-clock time in `zone` as an aware UTC instant."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=ZoneInfo(zone)).astimezone(UTC)


# -- the federal window's edges ------------------------------------------------------------------
def test_with_no_margin_nine_pm_itself_is_outside() -> None:
    # 47 CFR 64.1200(c)(1): windows are [08:00, 21:00); a launch at 21:00:00 would ring after it.
    no_margin = CampaignPolicy(margin=timedelta(0))
    nine_pm = utc("2026-03-03T02:00:00")  # Mon 21:00:00 Eastern
    assert codes(check(NY, nine_pm, policy=no_margin)) == {"outside_calling_window"}
    assert check(NY, nine_pm - MICROSECOND, policy=no_margin).allowed


def test_the_last_launch_is_exact_to_the_microsecond() -> None:
    last = utc("2026-03-03T01:57:00")  # 20:57:00 Eastern: its 3 minutes end at 21:00
    assert check(NY, last).allowed
    assert codes(check(NY, last + MICROSECOND)) == {"outside_calling_window"}
    assert codes(check(NY, utc("2026-03-02T13:00:00") - MICROSECOND)) == {"outside_calling_window"}


# -- each state's hours at their exact edges -------------------------------------------------------
# state: (a ZIP code in it, its zone, {weekday: (open, close) or None}); Mon=0. The week of
# 2026-03-09 (after the spring change, no holiday of any set).
WEEK = date(2026, 3, 9)
ALL_DAYS = range(7)


def hours(open_: str, close: str, days: range | tuple[int, ...] = ALL_DAYS) -> dict[int, tuple[time, time] | None]:
    window = (time.fromisoformat(open_), time.fromisoformat(close))
    return {day: (window if day in days else None) for day in ALL_DAYS}


STATE_HOURS: dict[str, tuple[str, str, dict[int, tuple[time, time] | None]]] = {
    "AL": ("35203", "America/Chicago", hours("08:00", "20:00", range(6))),  # Ala. Admin. Code 770-X-5-.17
    "CT": ("06103", "America/New_York", hours("09:00", "20:00")),  # C.G.S. 42-288a (P.A. 23-98)
    "FL": ("33101", "America/New_York", hours("08:00", "20:00")),  # Fla. Stat. 501.616(6)(a)
    "KY": ("40202", "America/Kentucky/Louisville", hours("10:00", "21:00")),  # vendor charts (low)
    "LA": ("70112", "America/Chicago", hours("08:00", "20:00", range(6))),  # La. R.S. 45:811
    "MD": ("21201", "America/New_York", hours("08:00", "20:00")),  # Md. Com. Law 14-4501 et seq.
    "MA": ("02108", "America/New_York", hours("08:00", "20:00")),  # 201 CMR 12.02(2)
    "MI": ("48226", "America/Detroit", hours("09:00", "21:00")),  # vendor chart (low)
    # Miss. Code 77-3-723(1): 8:00-20:00 "Central Standard Time" = 09:00-20:00 CDT in March.
    "MS": ("39201", "America/Chicago", hours("09:00", "20:00", range(6))),
    "OK": ("73102", "America/Chicago", hours("08:00", "20:00")),  # 15 O.S. 775C.4
    "OR": ("97201", "America/Los_Angeles", hours("08:00", "20:00")),  # HB 3865 (2025)
    "PA": ("19103", "America/New_York", hours("08:00", "21:00")),  # 73 P.S. 2245(a)
    "PR": ("00901", "America/Puerto_Rico", hours("09:00", "21:00")),  # P.R. Law 210-2003
    "TX": ("77002", "America/Chicago", {**hours("09:00", "21:00", range(6)), 6: (time(12), time(21))}),  # 301.051
    "UT": ("84101", "America/Denver", hours("08:00", "21:00", range(6))),  # Utah Code 13-25a-103(3)
    "WA": ("98101", "America/Los_Angeles", hours("08:00", "20:00")),  # RCW 19.158.040(2)
    "WY": ("82001", "America/Denver", hours("08:00", "20:00")),  # secondary source (low)
    "RI": ("02903", "America/New_York",  # R.I. Gen. Laws 5-61-2
           {**hours("09:00", "18:00", range(5)), 5: (time(10), time(17)), 6: None}),
    "NY": ("10001", "America/New_York", hours("08:00", "21:00")),  # federal only
}


@pytest.mark.parametrize("state", sorted(STATE_HOURS))
@pytest.mark.parametrize("weekday", ALL_DAYS)
def test_each_states_hours_at_their_exact_edges(state: str, weekday: int) -> None:
    zip_code, zone, week = STATE_HOURS[state]
    day = WEEK + timedelta(days=weekday)
    window = week[weekday]
    if window is None:
        for hour in (9, 12, 17):
            closed = placed(zip_code, at_local(zone, day, hour))
            assert codes(closed) == {"outside_calling_window"}, (state, day, hour, closed.reasons)
        return
    open_, close = window
    opening = at_local(zone, day, open_.hour, open_.minute)
    last = at_local(zone, day, close.hour, close.minute) - MARGIN
    assert codes(placed(zip_code, opening - SECOND)) == {"outside_calling_window"}, state
    assert placed(zip_code, opening).allowed, (state, day)
    assert placed(zip_code, last).allowed, (state, day)
    assert codes(placed(zip_code, last + MICROSECOND)) == {"outside_calling_window"}, state


# The whole of 2026, both directions: for every state with its own hours, allowed exactly when the
# research's windows (in every zone the rule names) and the federal window all contain the instant
# and the local date is not one of the state's holidays. Holidays written out by hand for 2026 from
# the research's lists (actual day and the observed Friday/Monday of a weekend one).
_FED_2026 = {"01-01", "01-19", "02-16", "05-25", "06-19", "07-03", "07-04", "09-07", "10-12", "11-11", "11-26", "12-25"}
HOLIDAYS_2026: dict[str, set[str]] = {
    "AL": (_FED_2026 | {"02-17", "04-27", "06-01", "12-01"}),
    "LA": (_FED_2026 - {"02-16", "06-19", "10-12"}) | {"01-08", "02-17", "04-03", "11-03", "11-27"},
    "PA": (_FED_2026 - {"06-19"}) | {"04-03", "06-14", "06-15", "11-03"},
    "RI": _FED_2026 | {"05-04", "08-10"},
    "UT": _FED_2026 | {"07-24"},
}
# (ZIP code, zones whose clock must be inside, hours) per state; Mississippi's hours are also read in
# fixed Central Standard Time (Etc/GMT+6), Texas's in Central time (Houston is Central anyway).
YEAR_ORACLE: dict[str, tuple[str, tuple[str, ...], dict[int, tuple[time, time] | None]]] = {
    state: (zip_code, (zone, "Etc/GMT+6") if state == "MS" else (zone,),
            hours("08:00", "20:00", range(6)) if state == "MS" else week)
    for state, (zip_code, zone, week) in STATE_HOURS.items()
}
_EDGES = sorted({h * 3600 + m * 60 for h in range(7, 22) for m in (0, 57)})


@settings(max_examples=150, deadline=None)
@given(day=st.integers(0, 364), seconds=st.one_of(
    st.integers(0, 86_399),
    st.builds(lambda edge, delta: max(0, min(86_399, edge + delta)), st.sampled_from(_EDGES), st.integers(-2, 2))))
@pytest.mark.parametrize("state", sorted(YEAR_ORACLE))
def test_a_whole_year_of_each_states_hours_and_holidays(state: str, day: int, seconds: int) -> None:
    zip_code, zones, week = YEAR_ORACLE[state]
    home = STATE_HOURS[state][1]
    local_day = date(2026, 1, 1) + timedelta(days=day)
    instant = (datetime(local_day.year, local_day.month, local_day.day, tzinfo=ZoneInfo(home))
               + timedelta(seconds=seconds)).astimezone(UTC)
    local = instant.astimezone(ZoneInfo(home))
    decision = placed(zip_code, instant)
    if f"{local:%m-%d}" in HOLIDAYS_2026.get(state, set()) and local.year == 2026:
        assert "state_holiday" in codes(decision), (state, local, decision.reasons)
        return
    assert "state_holiday" not in codes(decision), (state, local, decision.reasons)
    inside = _expected(local, 8)
    for zone in zones:
        clock = instant.astimezone(ZoneInfo(zone))
        window = week[clock.weekday()]
        if window is None:
            inside = False
            continue
        start = clock.replace(hour=window[0].hour, minute=window[0].minute, second=0, microsecond=0)
        close = clock.replace(hour=window[1].hour, minute=window[1].minute, second=0, microsecond=0)
        inside = inside and start <= clock <= close - MARGIN
    assert decision.allowed is inside, (state, local.isoformat(), decision.reasons)


@pytest.mark.parametrize("state", sorted(HOLIDAYS_2026))
def test_every_day_of_2026_is_a_holiday_exactly_when_the_research_says(state: str) -> None:
    zip_code, zone, _ = STATE_HOURS[state]
    found = set()
    for offset in range(365):
        day = date(2026, 1, 1) + timedelta(days=offset)
        if "state_holiday" in codes(placed(zip_code, at_local(zone, day, 12))):
            found.add(f"{day:%m-%d}")
    assert found == HOLIDAYS_2026[state]


def test_mississippi_in_winter_opens_at_eight() -> None:
    # Standard time: "8:00 a.m. Central Standard Time" is 08:00 on the clock.
    monday = date(2026, 1, 12)
    assert check(TOLL_FREE, at_local("America/Chicago", monday, 8), zip_code="39201").allowed
    assert not check(TOLL_FREE, at_local("America/Chicago", monday, 7, 59, 59), zip_code="39201").allowed


def test_el_paso_is_held_to_texas_hours_in_both_zones() -> None:
    # 79901 is Mountain; Texas hours are also read as Central (conservative): 09:00 MDT = 10:00 CDT
    # is open, 08:00 MDT (09:00 CDT) is Central's opening but Mountain's 08:00, closed.
    tuesday = WEEK + timedelta(days=1)
    assert not check(TOLL_FREE, at_local("America/Denver", tuesday, 8, 30), zip_code="79901").allowed
    assert check(TOLL_FREE, at_local("America/Denver", tuesday, 9), zip_code="79901").allowed
    # 19:57 MDT = 20:57 CDT: Central's last launch; 19:57:01 MDT is past it.
    assert check(TOLL_FREE, at_local("America/Denver", tuesday, 19, 57), zip_code="79901").allowed
    assert not check(TOLL_FREE, at_local("America/Denver", tuesday, 19, 57, 1), zip_code="79901").allowed


# -- daylight saving time, in every US zone -------------------------------------------------------
# (ZIP code, zone, local opening); every ZIP here is in a state without its own hours except PR.
ZONES = [
    ("10001", "America/New_York", 8),
    ("46204", "America/Indiana/Indianapolis", 8),
    ("60601", "America/Chicago", 8),
    ("80202", "America/Denver", 8),
    ("83702", "America/Boise", 8),
    ("85004", "America/Phoenix", 8),  # Arizona: no DST
    ("86515", "America/Denver", 8),  # Window Rock, Navajo Nation (Arizona, but on DST)
    ("90012", "America/Los_Angeles", 8),
    ("99501", "America/Anchorage", 8),
    ("99546", "America/Adak", 8),  # Hawaii-Aleutian, with DST
    ("96813", "Pacific/Honolulu", 8),  # no DST
    ("00901", "America/Puerto_Rico", 9),  # no DST; P.R. Law 210-2003
    ("00802", "America/St_Thomas", 8),
    ("96910", "Pacific/Guam", 8),
    ("96950", "Pacific/Saipan", 8),
    ("96799", "Pacific/Pago_Pago", 8),
]
# The 2026 changes: spring forward 2026-03-08, fall back 2026-11-01 (US); a day before and after.
CHANGE_DAYS = [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9),
               date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)]


def _expected(local: datetime, opens: int) -> bool:
    start = local.replace(hour=opens, minute=0, second=0, microsecond=0)
    last = local.replace(hour=21, minute=0, second=0, microsecond=0) - MARGIN
    return start <= local <= last


@pytest.mark.parametrize(("zip_code", "zone", "opens"), ZONES, ids=[f"{z}-{name}" for z, name, _ in ZONES])
def test_every_minute_around_each_clock_change(zip_code: str, zone: str, opens: int) -> None:
    # Every minute of each local day around a change, plus a second each side of the edges:
    # allowed exactly when the wall clock is inside [opening, 20:57] (the spring gap and the
    # repeated autumn hour both lie at night, outside it).
    tz = ZoneInfo(zone)
    for day in CHANGE_DAYS:
        start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        end = (datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC)
        instants = [start + timedelta(minutes=i) for i in range(int((end - start) / timedelta(minutes=1)))]
        for hh, mm in ((opens, 0), (20, 57)):
            edge = at_local(zone, day, hh, mm)
            instants += [edge - SECOND, edge, edge + SECOND]
        for instant in instants:
            local = instant.astimezone(tz)
            decision = placed(zip_code, instant)
            assert decision.allowed is _expected(local, opens), (zone, local.isoformat(), decision.reasons)
            if decision.allowed:
                assert decision.timezones == (zone,)


def test_spring_forward_in_hawaii_and_arizona_changes_nothing() -> None:
    # 2026-03-08 13:00Z: 08:00 EST became 09:00 EDT at 07:00Z, but Phoenix is 06:00 MST and
    # Honolulu 03:00 HST, as the day before. 15:00Z is 08:00 in Phoenix both days.
    for day in ("2026-03-07", "2026-03-08"):
        assert check(TOLL_FREE, utc(f"{day}T15:00"), zip_code="85004").allowed
        assert not check(TOLL_FREE, utc(f"{day}T14:59:59"), zip_code="85004").allowed
        assert check(TOLL_FREE, utc(f"{day}T18:00"), zip_code="96813").allowed
        assert not check(TOLL_FREE, utc(f"{day}T17:59:59"), zip_code="96813").allowed


def test_an_arizona_number_with_a_navajo_nation_address_keeps_both_clocks() -> None:
    # 928 Phoenix time and Window Rock (Denver time): in July 08:00 MST is 09:00 MDT, and
    # 20:57 MDT is 19:57 MST; the gate takes the stricter each end.
    july = date(2026, 7, 7)
    assert not check("928-729-0142", at_local("America/Denver", july, 8, 30), zip_code="86515").allowed
    assert check("928-729-0142", at_local("America/Phoenix", july, 8), zip_code="86515").allowed
    assert check("928-729-0142", at_local("America/Denver", july, 20, 57), zip_code="86515").allowed
    assert not check("928-729-0142", at_local("America/Denver", july, 20, 57, 1), zip_code="86515").allowed


# -- area code, ZIP code and state that disagree ------------------------------------------------
def test_number_zip_and_state_in_three_places_take_every_window() -> None:
    # A New York number, a Miami ZIP code and "CA" as the state: zones of all three, states of all
    # three (design decision 8: the strictest applies).
    tuesday = date(2026, 3, 10)
    decision = check(NY, at_local("America/New_York", tuesday, 12), zip_code="33101", state="CA")
    assert decision.allowed
    assert {"America/New_York", "America/Los_Angeles"} <= set(decision.timezones)
    # 08:30 Eastern is 05:30 Pacific: the state the ZIP code contradicts still counts.
    early = check(NY, at_local("America/New_York", tuesday, 8, 30), zip_code="33101", state="CA")
    assert codes(early) == {"outside_calling_window"} and "America/Los_Angeles" in early.reasons[0].message
    # 19:58 Eastern: federal allows it, Florida (the ZIP code's state) closed at 20:00 - 3 min.
    late = check(NY, at_local("America/New_York", tuesday, 19, 58), zip_code="33101")
    assert codes(late) == {"outside_calling_window"} and "501.616" in late.reasons[0].citation


def test_a_number_the_numbering_data_puts_in_the_wrong_state_zone_gets_its_states_zones() -> None:
    # phonenumbers maps 907-581 (Unalaska, AK) to Pacific/Honolulu, an hour behind Alaska time
    # (research rules.md section 4). Without an address the lead gets every Alaska zone as well:
    # 19:30 in Honolulu (HST, UTC-10) is 21:30 in Anchorage (AKDT since March 8, UTC-8), outside.
    tuesday = date(2026, 3, 10)
    decision = check("907-581-0142", at_local("Pacific/Honolulu", tuesday, 19, 30))
    assert {"Pacific/Honolulu", "America/Anchorage", "America/Adak"} <= set(decision.timezones)
    assert codes(decision) == {"outside_calling_window"}
    assert "America/Anchorage" in " ".join(r.message for r in decision.reasons)
    # A number whose zones fit its state is left alone.
    assert check("907-555-0142", at_local("America/Anchorage", tuesday, 12)).timezones == (
        "America/Adak", "America/Anchorage")


def test_a_zip_code_on_a_zone_line_keeps_both_clocks() -> None:
    # Phenix City, AL (36867): its centroid is in Eastern time (the city keeps Eastern in
    # practice), the ZIP source lists Central (the law's). Both apply: opening at 08:00 Central =
    # 09:00 Eastern, closing at 20:00 Eastern (Alabama's close) = 19:00 Central.
    tuesday = date(2026, 3, 10)
    assert set(placed("36867", at_local("America/New_York", tuesday, 12)).timezones) == {
        "America/Chicago", "America/New_York"}
    assert codes(placed("36867", at_local("America/New_York", tuesday, 8, 30))) == {"outside_calling_window"}
    assert placed("36867", at_local("America/New_York", tuesday, 9)).allowed
    assert placed("36867", at_local("America/New_York", tuesday, 19, 57)).allowed
    assert codes(placed("36867", at_local("America/New_York", tuesday, 19, 57, 1))) == {"outside_calling_window"}


def test_a_matching_zip_and_state_do_not_add_the_states_other_zones() -> None:
    # A Boston ZIP code with "MA": Eastern only (Massachusetts has one zone anyway); a Houston ZIP
    # code with "TX" keeps Central only, not El Paso's Mountain (the ZIP code is more precise).
    assert check(TOLL_FREE, utc("2026-03-10T15:00"), zip_code="77002", state="TX").timezones == ("America/Chicago",)


@settings(max_examples=300, deadline=None)
@given(npa=st.sampled_from(sorted(npa_states())), zip_code=st.one_of(st.none(), st.sampled_from(sorted(centroids()[1])[::211])),
       state=st.one_of(st.none(), st.sampled_from(sorted(US_STATE_CODES)), st.text(max_size=4)),
       at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)))
def test_whatever_disagrees_every_place_named_keeps_its_window(npa: int, zip_code: str | None, state: str | None,
                                                               at: datetime) -> None:
    # Allowed only if the federal window holds in every zone of the number, of the ZIP code
    # (both clocks on a zone line) and of the given state when the ZIP code does not confirm it;
    # an unknown state never gets through.
    decision = check(f"+1{npa}2345678", at, zip_code=zip_code, state=state, consents=CONSENTED)
    if not decision.allowed:
        return
    given_state = (state or "").strip().upper()
    assert not given_state or given_state in US_STATE_CODES
    found = locate_zip(zip_code) if zip_code else None
    zones = set(parse_number(f"+1{npa}2345678").zones)
    if found is not None:
        zones |= {found.zone, *found.also} - {None}
    if given_state and (found is None or found.state != given_state):
        zones |= set(zones_for_state(given_state))
    assert zones <= set(decision.timezones)
    for zone in zones:
        assert _expected(at.astimezone(ZoneInfo(zone)), 8), (zone, at)


@pytest.mark.parametrize("state", ["XX", "Florida", "F.L.", "99", "ZZ"])
def test_an_unknown_state_code_blocks(state: str) -> None:
    decision = check(NY, utc("2026-03-10T16:00"), state=state)
    assert codes(decision) == {"unknown_location"}, decision.reasons
    assert repr(state) in decision.reasons[0].message


def test_a_state_code_in_another_case_or_with_spaces_is_that_state() -> None:
    # " fl " is Florida: its 20:00 close applies to a New York number (19:58 EDT).
    late = utc("2026-03-10T23:58")
    assert codes(check(NY, late, state=" fl ")) == {"outside_calling_window"}
    assert check(NY, late).allowed


@pytest.mark.parametrize("zip_code", ["331011", "3310", "33101-12", "ABCDE", "33101 1234", "00000"])
def test_a_malformed_or_unknown_zip_blocks(zip_code: str) -> None:
    assert codes(check(NY, utc("2026-03-10T16:00"), zip_code=zip_code)) == {"unknown_location"}


@pytest.mark.parametrize("zip_code", ["33101", " 33101 ", "33101-1234", "331011234"])
def test_zip_plus_four_is_read(zip_code: str) -> None:
    assert placed(zip_code, utc("2026-03-10T16:00")).timezones == ("America/New_York",)


@pytest.mark.parametrize(("zip_code", "state"), [("", None), ("  ", None), (None, ""), (None, "  ")])
def test_blank_fields_are_no_location_not_a_guess(zip_code: str | None, state: str | None) -> None:
    at = utc("2026-03-10T16:00")
    assert check(NY, at, zip_code=zip_code, state=state).allowed  # the number places the lead
    assert codes(check(TOLL_FREE, at, zip_code=zip_code, state=state)) == {"unknown_location"}


def test_a_toll_free_number_with_an_unknown_state_blocks() -> None:
    assert codes(check(TOLL_FREE, utc("2026-03-10T16:00"), state="QQ")) == {"unknown_location"}


# -- state holidays the research lists ------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "holiday", "day"),
    [
        ("AL", "confederate_memorial_day_4th_mon_apr", date(2026, 4, 27)),
        ("AL", "jefferson_davis_birthday_1st_mon_jun", date(2026, 6, 1)),
        ("AL", "rosa_parks_day_dec1", date(2026, 12, 1)),
        ("AL", "mardi_gras", date(2026, 2, 17)),
        ("LA", "battle_of_new_orleans_jan8", date(2027, 1, 8)),
        ("LA", "mardi_gras", date(2027, 2, 9)),
        ("LA", "good_friday", date(2027, 3, 26)),
        ("LA", "day_after_thanksgiving", date(2026, 11, 27)),
        ("LA", "election_day_general", date(2026, 11, 3)),
        ("PA", "flag_day_jun14", date(2026, 6, 15)),  # Sunday June 14, observed Monday
        ("PA", "election_day_general", date(2026, 11, 3)),
        ("PA", "columbus_day", date(2026, 10, 12)),
        ("RI", "victory_day_2nd_mon_aug", date(2026, 8, 10)),
        ("RI", "ri_independence_day_may4", date(2026, 5, 4)),
        ("RI", "juneteenth", date(2026, 6, 19)),
        ("UT", "pioneer_day_jul24", date(2026, 7, 24)),
        ("UT", "juneteenth", date(2026, 6, 19)),
        ("UT", "presidents_day", date(2026, 2, 16)),
    ],
)
def test_a_listed_state_holiday_blocks_the_whole_day_and_only_that_day(state: str, holiday: str, day: date) -> None:
    zip_code, zone, _ = STATE_HOURS[state]
    noon = at_local(zone, day, 12)
    decision = placed(zip_code, noon)
    assert codes(decision) == {"state_holiday"} and holiday in decision.reasons[0].message, decision.reasons
    # The same holiday does not block a neighbouring state's lead (New York has no holiday ban).
    assert check(TOLL_FREE, at_local("America/New_York", day, 12), zip_code="10001").allowed
    # The ban follows the lead's local date: 23:59:59 the evening before is outside the window
    # anyway, so check the previous weekday's noon is free of this holiday.
    before = placed(zip_code, noon - timedelta(days=7))
    assert holiday not in " ".join(r.message for r in before.reasons)


def test_easter_and_its_holidays_for_known_years() -> None:
    known = {2024: date(2024, 3, 31), 2025: date(2025, 4, 20), 2026: date(2026, 4, 5), 2027: date(2027, 3, 28),
             2028: date(2028, 4, 16), 2029: date(2029, 4, 1), 2030: date(2030, 4, 21), 2038: date(2038, 4, 25)}
    for year, sunday in known.items():
        assert easter_sunday(year) == sunday


# -- frequency caps at their boundary -------------------------------------------------------------
MIAMI = "305-555-0142"
CAP_AT = utc("2026-03-10T16:00")  # Tue 12:00 Eastern


def test_an_attempt_exactly_24_hours_ago_still_counts() -> None:
    # Fla. Stat. 501.616(6)(b): 3 calls per 24 hours; the closed window is the stricter reading.
    attempts = [CAP_AT - timedelta(hours=24), CAP_AT - timedelta(hours=3), CAP_AT - timedelta(hours=1)]
    assert codes(check(MIAMI, CAP_AT, attempts=attempts)) == {"frequency_cap"}
    assert check(MIAMI, CAP_AT + timedelta(milliseconds=1), attempts=attempts).allowed


def test_an_attempt_stamped_ahead_by_another_clock_counts() -> None:
    attempts = [CAP_AT + timedelta(seconds=2), CAP_AT - timedelta(hours=3), CAP_AT - timedelta(hours=1)]
    assert codes(check(MIAMI, CAP_AT, attempts=attempts)) == {"frequency_cap"}


@settings(max_examples=300, deadline=None)
@given(offsets=st.lists(st.integers(-30 * 3600, 60), max_size=6), state_zip=st.sampled_from(
    ["33101", "21201", "73102", "97201", "10001"]))
def test_a_capped_state_never_allows_a_fourth_attempt_in_24_hours(offsets: list[int], state_zip: str) -> None:
    attempts = [CAP_AT + timedelta(seconds=s) for s in offsets]
    decision = check(TOLL_FREE, CAP_AT, zip_code=state_zip, attempts=attempts)
    within = sum(1 for s in offsets if s >= -24 * 3600)
    capped = state_zip != "10001"  # FL, MD, OK, OR: 3 per 24 h; New York: none
    if capped:
        assert decision.allowed is (within < 3), (offsets, decision.reasons)
    else:
        assert decision.allowed


# -- consent revoked, opt-out just before the dial ------------------------------------------------
def _pewc(obtained: datetime, revoked: datetime | None = None) -> ConsentRecord:
    return ConsentRecord(ConsentKind.PEWC, obtained, revoked_at=revoked)


def test_a_consent_revoked_a_moment_before_the_dial_no_longer_counts() -> None:
    # Revocation binds from its instant (47 CFR 64.1200(a)(10)): automated dialing in Florida and a
    # marketing text need the consent, so both are refused; revoked at the very instant, too.
    for revoked_at in (CAP_AT - timedelta(milliseconds=1), CAP_AT):
        revoked = [_pewc(CAP_AT - timedelta(days=30), revoked_at)]
        decision = check(MIAMI, CAP_AT, consents=revoked, dial_mode=DialMode.PREDICTIVE)
        assert codes(decision) == {"consent_missing"} and decision.required_dial_mode is DialMode.PREVIEW
        assert codes(check(NY, CAP_AT, consents=revoked, policy=CampaignPolicy(require_pewc=True))) == {"consent_missing"}
    # The "stop" itself reaches the gate as the opt-out list (tested below and in test_gate_redis).


def test_a_revocation_dated_after_the_dial_does_not_reach_back() -> None:
    later = [_pewc(CAP_AT - timedelta(days=30), CAP_AT + timedelta(seconds=1))]
    assert check(MIAMI, CAP_AT, consents=later, dial_mode=DialMode.PREDICTIVE).allowed


def test_a_consent_given_again_after_a_revocation_counts() -> None:
    consents = [_pewc(CAP_AT - timedelta(days=30), CAP_AT - timedelta(days=2)), _pewc(CAP_AT - timedelta(days=1))]
    assert check(MIAMI, CAP_AT, consents=consents, dial_mode=DialMode.PREDICTIVE).allowed
    # A consent not yet obtained (dated after the dial) does not.
    early = [_pewc(CAP_AT + timedelta(seconds=1))]
    assert codes(check(MIAMI, CAP_AT, consents=early, dial_mode=DialMode.PREDICTIVE)) == {"consent_missing"}


def test_an_opt_out_on_the_list_blocks_even_with_consent_on_file() -> None:
    decision = check(MIAMI, CAP_AT, hits={"optout"}, consents=[_pewc(CAP_AT - timedelta(days=1))],
                     dial_mode=DialMode.PREDICTIVE)
    assert codes(decision) == {"opted_out"}


# -- Medicare permission to contact: 12 months from the day it was given -----------------------
MEDICARE = CampaignPolicy(purpose=Purpose.MEDICARE_MARKETING)


def _ptc(obtained: datetime) -> ConsentRecord:
    return ConsentRecord(ConsentKind.PTC, obtained)


def test_a_permission_given_on_february_28_lapses_before_february_29() -> None:
    # 42 CFR 422.2264 (12 months): given 2027-02-28 15:00Z, it lapses 2028-02-28 15:00Z; on the
    # leap day it is older than 12 months (counting back from 2028-02-29 would clamp to 2027-02-28).
    given = utc("2027-02-28T15:00")
    assert check(NY, utc("2028-02-28T14:59:59"), consents=[_ptc(given)], policy=MEDICARE).allowed
    assert codes(check(NY, utc("2028-02-28T15:00"), consents=[_ptc(given)], policy=MEDICARE)) == {"consent_missing"}
    assert codes(check(NY, utc("2028-02-29T14:00"), consents=[_ptc(given)], policy=MEDICARE)) == {"consent_missing"}


@settings(max_examples=300, deadline=None)
@given(obtained=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)),
       age_days=st.integers(300, 400))
def test_no_permission_older_than_12_months_is_used(obtained: datetime, age_days: int) -> None:
    # Checked at 16:00 Eastern-ish on a weekday, so only the consent decides.
    day = (obtained + timedelta(days=age_days)).date()
    while day.weekday() > 4:
        day += timedelta(days=1)
    at = at_local("America/New_York", day, 12)
    decision = check(NY, at, consents=[_ptc(obtained)], policy=MEDICARE)
    year, month = obtained.year + 1, obtained.month
    lapses = obtained.replace(year=year, day=min(obtained.day, 28 if month == 2 and year % 4 else obtained.day))
    assert decision.allowed is (at < lapses), (obtained, at, decision.reasons)


# -- list freshness across the date line ----------------------------------------------------------
@pytest.mark.parametrize("phone", ["671-632-1234", "670-234-1234"])
def test_a_registry_copy_is_judged_on_the_leads_date_in_guam_and_the_marianas(phone: str) -> None:
    # 2026-03-02T22:30Z is 08:30 on Tuesday 2026-03-03 in Guam and Saipan (UTC+10): a copy of
    # 2026-01-30 is 32 days old there (47 CFR 64.1200(c)(2)(i)(D): at most 31), though only 31 by UTC.
    at = utc("2026-03-02T22:30")
    stale = check(phone, at, versions=ListVersions({"federal": "2026-01-30"}))
    assert codes(stale) == {"registry_stale"}, stale.reasons
    assert check(phone, at, versions=ListVersions({"federal": "2026-01-31"})).allowed
    # A mainland lead at the same instant (17:30 Eastern, Monday March 2) may still use it.
    assert check(NY, at, versions=ListVersions({"federal": "2026-01-30"})).allowed


def test_an_option_can_tighten_the_registry_age_but_never_loosen_it() -> None:
    from compliance_rules.rules import GateOptions

    at = utc("2026-03-03T16:00")
    old_copy = ListVersions({"federal": "2026-01-30"})  # 32 days
    assert codes(check(NY, at, versions=old_copy, options=GateOptions(registry_max_age_days=60))) == {"registry_stale"}
    assert codes(check(NY, at, versions=ListVersions({"federal": "2026-02-20"}),
                       options=GateOptions(registry_max_age_days=7))) == {"registry_stale"}


@pytest.mark.parametrize(
    ("list_name", "copy_date", "trusted"),
    [
        ("state:TX", "2026-12-20", False),  # not an edition day: a typo of 2025-12-20 would pass for months
        ("state:TX", "2027-01-01", True),  # the next edition, out early
        ("state:IN", "2027-01-01", True),  # Indiana publishes January's list in December
        ("state:TX", "2027-04-01", False),  # an edition, but 115 days ahead
        ("federal", "2026-12-08", False),  # no registry copy comes from the future (dated by UTC)
        ("litigator", "2026-12-08", False),
    ],
)
def test_a_copy_dated_ahead_is_trusted_only_as_an_early_edition(list_name: str, copy_date: str, trusted: bool) -> None:
    at = utc("2026-12-07T16:00")  # Monday 11:00 Eastern
    phone = {"state:TX": "214-555-0142", "state:IN": "317-555-0142"}.get(list_name, NY)
    decision = check(phone, at, versions=ListVersions({**fresh_versions(at).dates, list_name: copy_date}))
    assert decision.allowed is trusted, decision.reasons
    if not trusted:
        assert codes(decision) == {"registry_stale"} and "further in the future" in decision.reasons[0].message


# -- texts keep the windows of calls ------------------------------------------------------------
def test_a_marketing_text_at_nine_pm_is_outside_like_a_call() -> None:
    from compliance_rules.model import Channel, ContactRequest, NumberFacts, TextKind
    from compliance_rules.rules import decide, locate
    from tests.compliance.helpers import BOOK, fresh_versions

    nine_pm = utc("2026-03-03T02:00:00")
    consents = (_pewc(nine_pm - timedelta(days=1)),)
    for margin in (timedelta(0), MARGIN):
        request = ContactRequest(NY, lead_id="lead-1", consents=consents, channel=Channel.SMS,
                                 text_kind=TextKind.MARKETING)
        decision = decide(request, locate(request), NumberFacts(), fresh_versions(nine_pm),
                          CampaignPolicy(margin=margin), BOOK, nine_pm, "d-1")
        assert codes(decision) == {"outside_calling_window"}


# -- malformed rule data is refused at load (the gate then blocks everything) --------------------
BASE = DEFAULT_RULES_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  - state: WA\n", "  - state: ZZ\n", "'state' must be a two-letter US state"),
        ("  - state: WA\n", "  - state: wa\n", "'state' must be a two-letter US state"),
        ("cap: {max_attempts: 3, window_hours: 24, citation: \"Fla.",
         "cap: {max_attempts: 3, window_hours: 0, citation: \"Fla.", "'window_hours' must be a whole number of at least 1"),
        ("cap: {max_attempts: 3, window_hours: 24, citation: \"Fla.",
         "cap: {max_attempts: \"3\", window_hours: 24, citation: \"Fla.", "'max_attempts' must be a whole number"),
        ("  registry_max_age_days: 31", "  registry_max_age_days: thirty-one", "'registry_max_age_days' must be a whole number"),
        ("  - state: FL\n    confidence: high\n    effective_from: \"2021-07-01\"\n",
         "  - state: FL\n    confidence: high\n    effective_from: \"2021-07-01\"\n    effective_to: \"2021-07-01\"\n",
         "is not before effective_to"),
        ("  CO:\n    citation:", "  XX:\n    citation:", "two-letter US state or territory code"),
        ("    holidays: {set: AL_HOLIDAYS, observed: sat_to_fri_sun_to_mon, citation: \"Ala. Admin. Code r. 770-X-5-.17(1)(b); Ala. Code 1-3-8\"}",
         "    holidays: AL_HOLIDAYS", "a section of the wrong shape"),
        ("cap: {max_attempts: 3, window_hours: 24, citation: \"Fla. Stat. 501.616(6)(b) (3 calls per 24 h, same subject)\"}",
         "cap: \"3 per day\"", "must be a mapping with max_attempts"),
        ("  ptc_valid_months: 12", "  ptc_valid_months: [12]", "'ptc_valid_months' must be a whole number"),
        # The attempt store keeps 24 h: a 48-hour cap would be undercounted, so it is refused.
        ("cap: {max_attempts: 3, window_hours: 24, citation: \"Fla.",
         "cap: {max_attempts: 3, window_hours: 48, citation: \"Fla.", "longer than the 24 h of attempts the store keeps"),
    ],
)
def test_malformed_rule_data_is_refused(old: str, new: str, message: str) -> None:
    assert old in BASE, old
    with pytest.raises(RuleDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rulebook(BASE.replace(old, new, 1))


def _nevada_rows(first_ends: str, second_starts: str) -> str:
    week = ", ".join(f'{day}: [["09:00","20:00"]]' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    return "".join(
        f'  - state: NV\n    confidence: high\n    citation: "test row"\n    hours: {{{week}}}\n{dates}\n'
        for dates in (f'    effective_from: "2020-01-01"\n    effective_to: "{first_ends}"',
                      f'    effective_from: "{second_starts}"')
    )


def test_a_state_whose_rows_leave_days_uncovered_is_refused() -> None:
    # effective_to is exclusive: rows [2020-01-01, 2027-01-01) and [2027-01-01, ...) are seamless.
    seamless = BASE.replace("rules:\n", "rules:\n" + _nevada_rows("2027-01-01", "2027-01-01"), 1)
    assert len(parse_rulebook(seamless).rules_for("NV")) == 2
    gap = BASE.replace("rules:\n", "rules:\n" + _nevada_rows("2026-12-31", "2027-01-02"), 1)
    with pytest.raises(RuleDataError, match="rules for NV leave 2026-12-31 to 2027-01-01 without a rule"):
        parse_rulebook(gap)


def test_a_federal_window_wider_than_the_law_is_refused() -> None:
    federal = BASE[BASE.index("federal:"):BASE.index("holiday_sets:")]
    assert '["08:00","21:00"]' in federal
    widened = BASE.replace(federal, federal.replace('mon: [["08:00","21:00"]]', 'mon: [["07:00","21:00"]]', 1), 1)
    assert widened != BASE
    with pytest.raises(RuleDataError, match="wider than the law's 08:00-21:00"):
        parse_rulebook(widened)
