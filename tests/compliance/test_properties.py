"""Property tests: nothing on a list, and nothing outside an applicable window, is ever allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance_rules.location import centroids, locate_zip
from compliance_rules.model import DialMode
from compliance_rules.numbers import npa_states, parse_number
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import GateOptions
from tests.compliance.helpers import BOOK, check

pytestmark = pytest.mark.timeout(120)

NPAS = sorted(npa_states())
ZIPS = sorted(centroids()[1])[::97]  # ~440 ZIP codes spread over every state


@st.composite
def phones(draw: st.DrawFn) -> str:
    npa = draw(st.sampled_from(NPAS))
    nxx = draw(st.integers(200, 999))
    line = draw(st.integers(0, 9999))
    return f"+1{npa}{nxx}{line:04d}"


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
LISTS = ("federal", "internal", "litigator", "optout")


def _inside(hours: tuple[tuple[tuple[object, object], ...], ...], local: datetime) -> bool:
    t = local.time()
    return any(start <= t < end for start, end in hours[local.weekday()])  # type: ignore[operator]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    phone=phones(),
    zip_code=st.one_of(st.none(), st.sampled_from(ZIPS)),
    at=instants,
    listed=st.sets(st.sampled_from(LISTS)),
    on_state_list=st.booleans(),
    margin_minutes=st.integers(0, 10),
    low_confidence=st.booleans(),
)
def test_never_allowed_when_listed_or_outside_a_window(
    phone: str,
    zip_code: str | None,
    at: datetime,
    listed: set[str],
    on_state_list: bool,
    margin_minutes: int,
    low_confidence: bool,
) -> None:
    number = parse_number(phone)
    states = set(number.npa_states)
    zones = set(number.zones)
    if zip_code is not None:
        place = locate_zip(zip_code)
        assert place is not None
        states.add(place.state)
        if place.zone:
            zones.add(place.zone)
    hits = set(listed)
    if on_state_list:
        hits |= {f"state:{state}" for state in states}
    options = GateOptions(include_low_confidence=low_confidence)
    policy = CampaignPolicy(margin=timedelta(minutes=margin_minutes), dial_mode=DialMode.MANUAL)
    decision = check(phone, at, zip_code=zip_code, hits=hits, policy=policy, options=options)
    if not decision.allowed:
        return
    # Allowed: then no list applies, and every applicable window contains the instant.
    assert number.ok
    assert not listed
    assert not (on_state_list and states & set(BOOK.state_dnc_lists))
    assert zones and zones <= set(decision.timezones)
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        assert _inside(BOOK.federal.hours, local), (zone, local)
        for state in states:
            for rule in BOOK.rules_for(state):
                if rule.in_force(local.date(), include_low_confidence=low_confidence, flags=frozenset()):
                    for rule_zone in (zone, *rule.extra_zones):
                        rule_local = at.astimezone(ZoneInfo(rule_zone))
                        assert _inside(rule.hours, rule_local), (state, rule_zone, rule_local)
                        # and the call could not still be launching past the close
                        assert _inside(rule.hours, rule_local + timedelta(minutes=margin_minutes) - timedelta(seconds=1)) or margin_minutes == 0


@settings(max_examples=200, deadline=None)
@given(phone=phones(), at=instants)
def test_allowed_local_times_are_inside_the_federal_window(phone: str, at: datetime) -> None:
    decision = check(phone, at)
    if decision.allowed:
        for local in decision.local_times:
            hour = datetime.fromisoformat(local).hour
            assert 8 <= hour < 21


@settings(max_examples=300, deadline=None)
@given(npa=st.integers(200, 999), nxx=st.integers(0, 999), line=st.integers(0, 9999))
def test_fast_us_number_path_agrees_with_phonenumbers(npa: int, nxx: int, line: int) -> None:
    import phonenumbers

    raw = f"+1{npa}{nxx:03d}{line:04d}"
    info = parse_number.__wrapped__(raw)
    number = phonenumbers.parse(raw)
    # The US and its NANP territories (compliance_rules.numbers.US_TERRITORY_NPAS).
    is_us = phonenumbers.is_valid_number(number) and \
        phonenumbers.region_code_for_number(number) in ("US", "PR", "VI", "GU", "MP", "AS")
    assert (info.e164 is not None) == is_us
    if info.ok:
        assert set(info.zones) == set(phonenumbers.timezone.time_zones_for_number(number)) - {"Etc/Unknown"} or not info.geographic
