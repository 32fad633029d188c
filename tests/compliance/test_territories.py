"""US territories in the North American Numbering Plan (Puerto Rico, the US Virgin Islands, Guam,
the Northern Mariana Islands, American Samoa) are US numbers: the TCPA and the National Do Not
Call Registry cover them, and each is called within its own zone's window. The other NANP
countries stay out. UTC inputs; the comments give the local time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from compliance_rules import batch
from compliance_rules.model import ContactRequest, ListVersions, NumberFacts
from compliance_rules.numbers import NumberProblem, parse_number
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import decide, locate
from tests.compliance.helpers import BOOK, check, codes, fresh_versions, utc

pytestmark = pytest.mark.timeout(30)
SECOND = timedelta(seconds=1)

# (number as a lead form writes it, territory, its zone, the window's opening on Monday 2026-03-02
# in UTC: 08:00 local, the federal opening, except Puerto Rico's own 09:00, P.R. Law 210-2003)
TERRITORIES = [
    ("(787) 234-5678", "PR", "America/Puerto_Rico", "2026-03-02T13:00"),  # AST, UTC-4, no DST
    ("939-234-5678", "PR", "America/Puerto_Rico", "2026-03-02T13:00"),
    ("+1 340 773 1234", "VI", "America/St_Thomas", "2026-03-02T12:00"),  # AST, UTC-4
    ("671.632.1234", "GU", "Pacific/Guam", "2026-03-01T22:00"),  # ChST, UTC+10: Sunday 22:00 UTC
    ("(670) 234-1234", "MP", "Pacific/Saipan", "2026-03-01T22:00"),  # ChST, UTC+10
    ("684-633-1234", "AS", "Pacific/Pago_Pago", "2026-03-02T19:00"),  # SST, UTC-11
]


@pytest.mark.parametrize(("raw", "territory", "zone", "eight_am"), TERRITORIES)
def test_a_territory_number_is_a_us_number_in_its_own_zone(raw: str, territory: str, zone: str,
                                                          eight_am: str) -> None:
    number = parse_number(raw)
    assert number.ok and number.e164 == "+1" + "".join(c for c in raw if c.isdigit())[-10:], number
    assert (number.zones, number.npa_states, number.geographic) == ((zone,), (territory,), True)


@pytest.mark.parametrize(("raw", "territory", "zone", "eight_am"), TERRITORIES)
def test_a_territory_number_is_called_within_its_zones_window(raw: str, territory: str, zone: str,
                                                             eight_am: str) -> None:
    at = utc(eight_am)
    opening = check(raw, at)
    assert opening.allowed and opening.timezones == (zone,), opening.reasons
    opens = "09:00:00" if territory == "PR" else "08:00:00"
    assert opening.local_times[0][11:19] == opens
    early = check(raw, at - SECOND)
    assert codes(early) == {"outside_calling_window"} and zone in early.reasons[0].message
    # 20:57 local is the last launch (a 3-minute margin before 21:00), 20:57:01 is not.
    last = at + timedelta(hours=12 if territory != "PR" else 11, minutes=57)
    assert check(raw, last).allowed
    assert codes(check(raw, last + SECOND)) == {"outside_calling_window"}


@pytest.mark.parametrize(("raw", "territory", "zone", "eight_am"), TERRITORIES)
def test_a_territory_lead_is_on_the_national_registry_like_any_other(raw: str, territory: str, zone: str,
                                                                    eight_am: str) -> None:
    at = utc(eight_am) + timedelta(hours=4)
    assert codes(check(raw, at, hits={"federal"})) == {"dnc_federal"}
    assert codes(check(raw, at, state=territory)) == set()
    # No registry copy loaded: blocked as for any US number (47 CFR 64.1200(c)(2)).
    assert codes(check(raw, at, versions=ListVersions({}))) == {"registry_stale"}


def test_a_puerto_rico_address_with_a_mainland_number_keeps_both_windows() -> None:
    # 12:30 UTC on a Monday: 08:30 in San Juan, 07:30 in New York.
    decision = check("212-555-0142", utc("2026-03-02T12:30"), state="PR", zip_code="00901")
    assert set(decision.timezones) == {"America/New_York", "America/Puerto_Rico"}
    assert codes(decision) == {"outside_calling_window"} and "America/New_York" in decision.reasons[0].message


@pytest.mark.parametrize(("raw", "region"), [
    ("+1 809 234 5678", "DO"),  # Dominican Republic
    ("+1 613 555 0142", "CA"),  # Canada
    ("+1 441 234 5678", "BM"),  # Bermuda
    ("+1 876 234 5678", "JM"),  # Jamaica
])
def test_the_other_nanp_countries_are_still_not_us(raw: str, region: str) -> None:
    number = parse_number(raw)
    assert (number.problem, number.detail) == (NumberProblem.NOT_US, f"not a US number (region {region})")
    assert codes(check(raw, utc("2026-03-02T15:00"))) == {"invalid_number"}


def test_an_invalid_territory_number_is_invalid() -> None:
    assert parse_number("+1 684 900 1234").problem is NumberProblem.INVALID  # no such AS exchange


def test_a_location_without_a_zone_is_blocked_not_guessed() -> None:
    # As when the numbering or ZIP data has no zone for a lead: whatever builds the location,
    # the gate blocks instead of assuming a window.
    at = utc("2026-03-02T16:00")
    request = ContactRequest("(787) 234-5678", lead_id="lead-1")
    located = locate(request)
    zoneless = replace(located, zones=(), number=replace(located.number, zones=()))
    decision = decide(request, zoneless, NumberFacts(frozenset(), ()), fresh_versions(at),
                      CampaignPolicy(campaign_id="c1"), BOOK, at, "decision-1")
    assert codes(decision) == {"unknown_location"}, decision.reasons
    assert "no time zone" in decision.reasons[0].message


def test_the_bulk_classifier_agrees_on_territory_numbers() -> None:
    raws = [raw for raw, _, _, _ in TERRITORIES] + ["+1 809 234 5678"]
    nationals = np.array([batch.national_number(raw) for raw in raws], dtype=np.int64)
    classified = batch.classify(nationals)
    assert classified.ok.tolist() == [True] * len(TERRITORIES) + [False]
    assert classified.geographic.tolist() == [True] * len(TERRITORIES) + [False]
    assert [batch.states_of(int(mask)) for mask in classified.states[:-1]] == \
        [(territory,) for _, territory, _, _ in TERRITORIES]


