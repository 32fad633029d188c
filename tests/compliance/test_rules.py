"""The pure rules, with explicit times (UTC inputs; the comments give the local time)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from compliance_rules.holidays import ObservedRule, easter_sunday, holiday_dates, holiday_on, nth_weekday
from compliance_rules.model import ConsentKind, ConsentRecord, DialMode, ListVersions, Purpose
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import GateOptions
from compliance_rules.ruleset import parse_hours
from tests.compliance.helpers import check, codes, utc

NY = "212-555-0142"  # America/New_York, no state calling-hours rule
pytestmark = pytest.mark.timeout(30)


# -- federal window edges (47 CFR 64.1200(c)(1)), 2026-03-02 is a Monday, New York = UTC-5 ---------
@pytest.mark.parametrize(
    ("at", "allowed"),
    [
        ("2026-03-02T12:59:59", False),  # 07:59:59
        ("2026-03-02T13:00:00", True),  # 08:00:00
        ("2026-03-03T01:57:00", True),  # 20:57:00: last launch with the 3-minute margin
        ("2026-03-03T01:57:01", False),  # 20:57:01
        ("2026-03-03T02:00:00", False),  # 21:00
    ],
)
def test_federal_window_edges(at: str, allowed: bool) -> None:
    decision = check(NY, utc(at))
    assert decision.allowed is allowed, decision.reasons
    if not allowed:
        assert codes(decision) == {"outside_calling_window"}
        assert "64.1200(c)(1)" in decision.reasons[0].citation


def test_zero_margin_allows_until_the_close() -> None:
    policy = CampaignPolicy(margin=timedelta(0))
    assert check(NY, utc("2026-03-03T01:59:59"), policy=policy).allowed


# -- zones --------------------------------------------------------------------------------------
def test_split_area_code_is_resolved_per_exchange() -> None:
    at = utc("2026-03-03T00:58")  # Mon 19:58 Eastern, 18:58 Central; FL closes at 20:00
    tallahassee = check("850-222-0142", at)
    panama_city = check("850-785-0142", at)
    assert tallahassee.timezones == ("America/New_York",)
    assert panama_city.timezones == ("America/Chicago",)
    assert codes(tallahassee) == {"outside_calling_window"}
    assert "Fla. Stat. 501.616" in tallahassee.reasons[0].citation
    assert panama_city.allowed


@pytest.mark.parametrize(
    ("phone", "at", "strict_zone"),
    [
        ("208-555-0142", "2026-03-02T15:30", "America/Los_Angeles"),  # Boise 08:30, Pacific 07:30
        ("928-729-0142", "2026-07-01T14:30", "America/Phoenix"),  # Denver 08:30 MDT, Phoenix 07:30 MST
    ],
)
def test_exchange_with_two_zones_takes_the_stricter(phone: str, at: str, strict_zone: str) -> None:
    decision = check(phone, utc(at))
    assert len(decision.timezones) == 2
    assert not decision.allowed
    assert [r.message for r in decision.reasons if strict_zone in r.message]
    assert len(decision.local_times) == 2
    # one hour later both zones are open
    assert check(phone, utc(at) + timedelta(hours=1)).allowed


def test_number_zone_and_zip_zone_disagree() -> None:
    # A New York number whose lead lives in Beverly Hills (90210, Pacific).
    early = check(NY, utc("2026-03-02T15:30"), zip_code="90210")  # NY 10:30, LA 07:30
    assert set(early.timezones) == {"America/New_York", "America/Los_Angeles"}
    assert not early.allowed and "America/Los_Angeles" in early.reasons[0].message
    late = check(NY, utc("2026-03-03T01:30"), zip_code="90210")  # NY 20:30 (ok), LA 17:30
    assert late.allowed
    evening_ny = check(NY, utc("2026-03-03T02:30"), zip_code="90210")  # NY 21:30
    assert not evening_ny.allowed


def test_zip_state_rules_apply_with_an_out_of_state_number() -> None:
    # New York number, Texas address (Dallas 75201): Texas starts at 09:00.
    decision = check(NY, utc("2026-03-02T14:30"), zip_code="75201")  # NY 09:30, Dallas 08:30
    assert not decision.allowed
    assert any("Tex. Bus. & Com. Code 301.051" in r.citation for r in decision.reasons)


# -- state hours ----------------------------------------------------------------------------------
def test_texas_sunday_starts_at_noon() -> None:
    dallas = "214-555-0142"  # Central, UTC-6 in March before DST
    assert not check(dallas, utc("2026-03-01T17:30")).allowed  # Sun 11:30
    assert check(dallas, utc("2026-03-01T18:00")).allowed  # Sun 12:00
    assert not check(dallas, utc("2026-03-02T14:30")).allowed  # Mon 08:30 (09:00 start)
    assert check(dallas, utc("2026-03-02T15:00")).allowed  # Mon 09:00


def test_el_paso_is_held_to_central_time_too() -> None:
    el_paso = "915-555-0142"  # America/Denver; TX hours also read as Central
    decision = check(el_paso, utc("2026-03-03T02:30"))  # Mon 19:30 Mountain = 20:30 Central: ok
    assert decision.allowed
    decision = check(el_paso, utc("2026-03-03T03:00"))  # 20:00 Mountain = 21:00 Central
    assert any("America/Chicago" in r.message for r in decision.reasons)


def test_rhode_island_saturday_and_sunday() -> None:
    providence = "401-555-0142"  # Eastern, UTC-5
    assert not check(providence, utc("2026-03-07T14:30")).allowed  # Sat 09:30
    assert check(providence, utc("2026-03-07T15:00")).allowed  # Sat 10:00
    assert check(providence, utc("2026-03-07T21:57")).allowed  # Sat 16:57
    assert not check(providence, utc("2026-03-07T21:58")).allowed  # Sat 16:58 (17:00 - margin)
    sunday = check(providence, utc("2026-03-08T17:00"))  # Sun 13:00
    assert codes(sunday) == {"outside_calling_window"}
    assert "no calls on Sunday" in sunday.reasons[0].message
    assert check(providence, utc("2026-03-09T21:57")).allowed  # Mon 17:57 EDT (18:00 - margin)
    assert not check(providence, utc("2026-03-09T21:58")).allowed  # Mon 17:58 EDT


def test_florida_closes_at_eight() -> None:
    miami = "305-555-0142"  # Eastern, UTC-5 (Tuesday 2026-03-03)
    assert check(miami, utc("2026-03-04T00:57")).allowed  # 19:57
    decision = check(miami, utc("2026-03-04T00:58"))  # 19:58: the call could ring past 20:00
    assert codes(decision) == {"outside_calling_window"}
    assert not check(miami, utc("2026-03-04T01:00")).allowed  # 20:00
    assert check("212-555-0142", utc("2026-03-04T01:00")).allowed  # the federal window is still open


def test_mississippi_uses_central_standard_time_all_year() -> None:
    jackson = "601-555-0142"  # America/Chicago
    assert not check(jackson, utc("2026-07-01T13:30")).allowed  # 08:30 CDT = 07:30 CST
    assert check(jackson, utc("2026-07-01T14:00")).allowed  # 09:00 CDT = 08:00 CST


def test_low_confidence_rows_are_configurable() -> None:
    louisville = "502-555-0142"  # Kentucky, Eastern; KY 10:00 start is low confidence
    at = utc("2026-03-02T14:30")  # Mon 09:30
    assert not check(louisville, at).allowed
    assert check(louisville, at, options=GateOptions(include_low_confidence=False)).allowed


def test_flagged_rule_applies_only_when_enabled() -> None:
    philadelphia = "215-555-0142"
    at = utc("2026-11-02T00:30")  # Sun 2026-11-01 19:30 EST: PA 08-21 ok; SB 992 (flag) would ban Sunday
    assert check(philadelphia, at).allowed
    assert not check(philadelphia, at, options=GateOptions(flags=frozenset({"pa_sb992"}))).allowed


def test_campaign_window_only_restricts() -> None:
    window = parse_hours({d: [["10:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "w")
    policy = CampaignPolicy(window=window)
    assert not check(NY, utc("2026-03-02T14:30"), policy=policy).allowed  # 09:30
    assert check(NY, utc("2026-03-02T15:30"), policy=policy).allowed  # 10:30


# -- daylight saving time -------------------------------------------------------------------------
def test_spring_forward_day() -> None:
    # 2026-03-08: clocks go 02:00 EST -> 03:00 EDT. 12:00Z is 08:00 EDT (07:00 under a fixed EST offset).
    assert not check(NY, utc("2026-03-08T11:59")).allowed  # 07:59 EDT
    decision = check(NY, utc("2026-03-08T12:00"))
    assert decision.allowed
    assert decision.local_times == ("2026-03-08T08:00:00-04:00",)


def test_fall_back_day() -> None:
    # 2026-11-01: clocks go 02:00 EDT -> 01:00 EST. 12:00Z is 07:00 EST.
    assert not check(NY, utc("2026-11-01T12:59")).allowed
    assert check(NY, utc("2026-11-01T13:00")).allowed
    assert check(NY, utc("2026-11-02T01:57")).allowed  # 20:57 EST
    assert not check(NY, utc("2026-11-02T01:58")).allowed


def test_arizona_does_not_change_clocks() -> None:
    phoenix = "602-555-0142"
    assert not check(phoenix, utc("2026-03-08T14:59")).allowed  # 07:59 MST
    assert check(phoenix, utc("2026-03-08T15:00")).allowed
    assert check(phoenix, utc("2026-07-08T15:00")).allowed  # still 08:00 in July


# -- holidays -------------------------------------------------------------------------------------
def test_holiday_dates() -> None:
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert easter_sunday(2027) == date(2027, 3, 28)
    assert nth_weekday(2026, 5, 0, -1) == date(2026, 5, 25)  # Memorial Day
    assert nth_weekday(2026, 11, 3, 4) == date(2026, 11, 26)  # Thanksgiving
    assert holiday_dates("independence_day", 2026, ObservedRule.SAT_TO_FRI_SUN_TO_MON) == (
        date(2026, 7, 4),
        date(2026, 7, 3),
    )
    assert holiday_dates("christmas", 2022, ObservedRule.SAT_TO_FRI_SUN_TO_MON)[1] == date(2022, 12, 26)
    # New Year's Day 2028 is a Saturday: observed on Friday 2027-12-31.
    assert holiday_on(("new_years_day",), date(2027, 12, 31), ObservedRule.SAT_TO_FRI_SUN_TO_MON) == "new_years_day"


def test_state_holiday_on_a_weekend_is_observed_on_friday() -> None:
    birmingham = "205-555-0142"  # Alabama, Central (CDT in July)
    observed = check(birmingham, utc("2026-07-03T16:00"))  # Fri 11:00, July 4 falls on Saturday
    assert codes(observed) == {"state_holiday"}
    assert "independence_day" in observed.reasons[0].message
    assert codes(check(birmingham, utc("2026-07-04T16:00"))) == {"state_holiday"}  # the day itself
    assert check(birmingham, utc("2026-07-02T16:00")).allowed


def test_rhode_island_federal_holiday_and_pennsylvania_good_friday() -> None:
    assert codes(check("401-555-0142", utc("2026-09-07T15:00"))) == {"state_holiday"}  # Labor Day
    assert codes(check("215-555-0142", utc("2026-04-03T15:00"))) == {"state_holiday"}  # Good Friday
    assert check("212-555-0142", utc("2026-04-03T15:00")).allowed  # New York has no holiday ban


# -- caps ----------------------------------------------------------------------------------------
def test_florida_cap_reached() -> None:
    at = utc("2026-03-03T15:00")
    miami = "305-555-0142"
    two = [at - timedelta(hours=h) for h in (1, 5)]
    assert check(miami, at, attempts=two).allowed
    three = [*two, at - timedelta(hours=23)]
    decision = check(miami, at, attempts=three)
    assert codes(decision) == {"frequency_cap"}
    assert "501.616(6)(b)" in decision.reasons[0].citation
    old = [*two, at - timedelta(hours=25)]
    assert check(miami, at, attempts=old).allowed
    assert check(NY, at, attempts=three * 3).allowed  # no cap in New York
    assert not check(NY, at, attempts=three, policy=CampaignPolicy(max_attempts_per_24h=3)).allowed


def test_florida_cap_follows_the_address() -> None:
    at = utc("2026-03-03T15:00")
    attempts = [at - timedelta(hours=h) for h in (1, 2, 3)]
    assert codes(check(NY, at, zip_code="33101", attempts=attempts)) == {"frequency_cap"}


# -- lists and registry ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phone", "hit", "code"),
    [
        (NY, "federal", "dnc_federal"),
        ("305-555-0142", "state:FL", "dnc_state"),
        (NY, "internal", "dnc_internal"),
        (NY, "litigator", "litigator"),
        (NY, "optout", "opted_out"),
    ],
)
def test_list_hits_block(phone: str, hit: str, code: str) -> None:
    assert codes(check(phone, utc("2026-03-03T15:00"), hits=[hit])) == {code}


def test_registry_freshness() -> None:
    at = utc("2026-03-03T15:00")
    assert check(NY, at, versions=ListVersions({"federal": "2026-01-31"})).allowed  # 31 days
    stale = check(NY, at, versions=ListVersions({"federal": "2026-01-30"}))  # 32 days
    assert codes(stale) == {"registry_stale"}
    assert "64.1200(c)(2)" in stale.reasons[0].citation
    assert codes(check(NY, at, versions=ListVersions({}))) == {"registry_stale"}
    assert stale.data_versions["federal_dnc"] == "2026-01-30"


def test_missing_state_list_blocks_that_states_leads() -> None:
    at = utc("2026-03-03T15:00")
    versions = ListVersions({"federal": "2026-03-01"})
    assert codes(check("305-555-0142", at, versions=versions)) == {"registry_stale"}
    assert check("305-555-0142", at, versions=versions, options=GateOptions(require_state_dnc_lists=False)).allowed


# -- numbers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["123", "not a number", "+44 20 7946 0958", "+1 613 555 0142", "900-555-0142", ""])
def test_invalid_non_us_and_undialable_numbers(raw: str) -> None:
    decision = check(raw, utc("2026-03-03T15:00"))
    assert codes(decision) == {"invalid_number"}
    # The audit row keeps the raw input when there is no valid E.164 form.
    assert decision.phone == ("+19005550142" if raw.startswith("900") else raw)


def test_toll_free_needs_an_address() -> None:
    at = utc("2026-03-03T15:00")
    assert codes(check("800-555-0142", at)) == {"unknown_location"}
    located = check("800-555-0142", at, zip_code="10001")
    assert located.allowed and located.timezones == ("America/New_York",)
    by_state = check("800-555-0142", at, state="TX")
    assert set(by_state.timezones) == {"America/Chicago", "America/Denver"}


def test_unknown_zip_blocks() -> None:
    assert codes(check(NY, utc("2026-03-03T15:00"), zip_code="00000")) == {"unknown_location"}


# -- consent --------------------------------------------------------------------------------------
def test_state_consent_rule_forces_preview_for_automated_dialing() -> None:
    at = utc("2026-03-03T15:00")
    miami = "305-555-0142"
    decision = check(miami, at, dial_mode=DialMode.PREDICTIVE)
    assert codes(decision) == {"consent_missing"}
    assert decision.required_dial_mode is DialMode.PREVIEW
    assert check(miami, at, dial_mode=DialMode.PREVIEW).allowed
    pewc = ConsentRecord(ConsentKind.PEWC, at - timedelta(days=400))
    assert check(miami, at, dial_mode=DialMode.PREDICTIVE, consents=[pewc]).allowed
    revoked = ConsentRecord(ConsentKind.PEWC, at - timedelta(days=400), revoked_at=at - timedelta(days=1))
    assert not check(miami, at, dial_mode=DialMode.PREDICTIVE, consents=[revoked]).allowed


def test_connecticut_requires_written_consent_for_every_sales_call() -> None:
    decision = check("203-555-0142", utc("2026-03-03T15:00"), dial_mode=DialMode.MANUAL)
    assert codes(decision) == {"consent_missing"}


def test_campaign_requires_pewc_and_medicare_ptc() -> None:
    at = utc("2026-03-03T15:00")
    assert codes(check(NY, at, policy=CampaignPolicy(require_pewc=True))) == {"consent_missing"}
    medicare = CampaignPolicy(purpose=Purpose.MEDICARE_MARKETING)
    recent = ConsentRecord(ConsentKind.PTC, utc("2025-04-04T00:00"))  # 11 months ago
    old = ConsentRecord(ConsentKind.PTC, utc("2025-03-02T00:00"))  # 12 months and a day
    assert check(NY, at, policy=medicare, consents=[recent]).allowed
    assert codes(check(NY, at, policy=medicare, consents=[old])) == {"consent_missing"}


# -- the audit record -----------------------------------------------------------------------------
def test_record_has_exactly_the_audit_columns() -> None:
    decision = check("850-222-0142", utc("2026-03-03T00:58"))
    record = decision.to_record()
    assert set(record) == {
        "decision_id", "decided_at", "phone", "lead_id", "campaign_id", "purpose", "allowed",
        "reasons", "timezones", "local_times", "data_versions", "notices", "channel", "text_kind",
    }
    assert record["phone"] == "+18502220142"
    assert record["decided_at"] == "2026-03-03T00:58:00Z"
    assert record["allowed"] is False
    assert set(record["reasons"][0]) == {"code", "message", "citation"}
    assert record["data_versions"]["federal_dnc"] == "2026-03-03"
    assert "rules" in record["data_versions"] and "numbering" in record["data_versions"]
    json.dumps(record)


# -- the recording disclosure (all-party-consent states) ------------------------------------------
@pytest.mark.parametrize(
    ("phone", "state", "zip_code", "states"),
    [
        ("415-555-0142", None, None, ["CA"]),  # San Francisco
        (NY, None, None, []),  # New York: one-party consent
        (NY, "CA", None, ["CA"]),  # a New York cell, living in California
        (NY, None, "98101", ["WA"]),  # ... or in Seattle, by ZIP
        ("305-555-0142", "PA", None, ["FL", "PA"]),
        ("512-555-0142", "TX", "78701", []),
    ],
)
def test_a_lead_who_may_be_in_an_all_party_consent_state_gets_the_recording_notice(
    phone: str, state: str | None, zip_code: str | None, states: list[str]
) -> None:
    decision = check(phone, utc("2026-03-03T18:00"), state=state, zip_code=zip_code)
    assert decision.allowed  # a notice never blocks
    assert decision.recording_disclosure is bool(states)
    if states:
        (notice,) = decision.notices
        assert all(f"{s}:" in notice.citation for s in states) and "recorded" in notice.message
        assert decision.to_record()["notices"] == [notice.to_record()]
    else:
        assert decision.to_record()["notices"] == []


def test_a_blocked_california_call_still_says_a_notice_was_due_and_an_invalid_number_does_not() -> None:
    blocked = check("415-555-0142", utc("2026-03-03T18:00"), hits=["federal"])
    assert not blocked.allowed and blocked.recording_disclosure
    assert check("555-0142", utc("2026-03-03T18:00")).notices == ()


def test_the_abandonment_rate_counts_live_answers_by_one_stated_rule() -> None:
    from compliance_rules.telemarketing import AbandonTally, is_live_answer

    assert is_live_answer("HUMAN") and is_live_answer("NOTSURE")
    assert not any(is_live_answer(result) for result in ("MACHINE", "HANGUP", None, ""))
    assert not is_live_answer("HUMAN", inbound=True)  # received calls are not paced dials
    assert AbandonTally(live_answers=100, abandoned=3).rate == 0.03
    assert AbandonTally().rate == 0.0
