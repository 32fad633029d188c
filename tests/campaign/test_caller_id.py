"""A campaign's caller ID (16 CFR 310.4(a)(8)): E.164, not withheld, a number a person can call
back, and, where required, one the agency vouched for. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from dialer.campaign.caller_id import CallerIdCode, check_caller_id
from dialer.provision.trunks import CallerIdRecord
from dialer.settings import from_environment

pytestmark = pytest.mark.timeout(10)

TODAY = dt.date(2026, 11, 29)
OURS = CallerIdRecord("+12125550123", "Example Insurance Agency LLC", "Jane Smith, compliance officer",
                      dt.date(2026, 3, 1), answered_by="front desk, 9-5 ET")


def test_a_vouched_number_passes_and_says_who_vouched() -> None:
    check = check_caller_id("+12125550123", [OURS], require_vouched=True, today=TODAY)
    assert check.ok and check.code is None and check.vouched == OURS
    assert check.describe() == ("+12125550123: owned by Example Insurance Agency LLC, vouched for by Jane Smith, "
                                "compliance officer on 2026-03-01")


@pytest.mark.parametrize(("number", "code"), [
    (None, CallerIdCode.MISSING),
    ("  ", CallerIdCode.MISSING),
    ("anonymous", CallerIdCode.WITHHELD),
    ("Restricted", CallerIdCode.WITHHELD),
    ("212-555-0123", CallerIdCode.INVALID),  # not E.164
    ("+1212555012", CallerIdCode.INVALID),  # nine digits
    ("+12125550123 ", None),  # surrounding space is not a different number
    ("+11235550123", CallerIdCode.INVALID),  # no area code starts with 1
    ("+19005550123", CallerIdCode.INVALID),  # premium rate: nobody calls it back for free
    ("+442071234567", CallerIdCode.INVALID),  # not a US number
    ("+13125550100", CallerIdCode.NOT_VOUCHED),
])
def test_unusable_caller_ids_are_refused_with_a_machine_readable_code(number: str | None,
                                                                    code: CallerIdCode | None) -> None:
    check = check_caller_id(number, [OURS], require_vouched=True, today=TODAY)
    assert check.code == code, check
    assert check.ok == (code is None)
    if code is not None:
        assert check.message.endswith(".") and check.describe() == check.message


def test_an_incomplete_vouching_is_not_a_vouching() -> None:
    nobody = CallerIdRecord("+12125550123", "Example Insurance Agency LLC", "", dt.date(2026, 3, 1))
    future = CallerIdRecord("+12125550123", "Example Insurance Agency LLC", "Jane Smith", dt.date(2026, 12, 1))
    for record in (nobody, future):
        check = check_caller_id("+12125550123", [record], require_vouched=True, today=TODAY)
        assert check.code is CallerIdCode.VOUCHING_INCOMPLETE and check.vouched == record


def test_without_vouching_required_a_well_formed_number_is_enough() -> None:
    check = check_caller_id("+13125550100", [], require_vouched=False, today=TODAY)
    assert check.ok and check.vouched is None and "well-formed" in check.describe()
    # Form is checked all the same.
    assert check_caller_id("anonymous", [], require_vouched=False, today=TODAY).code is CallerIdCode.WITHHELD


def test_settings_require_vouching_in_production_or_once_caller_ids_are_configured() -> None:
    development = from_environment({})
    assert development.development and not development.caller_ids_required
    assert development.caller_id_check("+13125550100").ok
    configured = from_environment({}, caller_ids=(OURS,))
    assert configured.caller_ids_required
    assert configured.caller_id_check("+13125550100", TODAY).code is CallerIdCode.NOT_VOUCHED
    assert configured.caller_id_check("+12125550123", TODAY).vouched == OURS
    assert configured.caller_id_problem("+13125550100") == (
        "Caller ID +13125550100 is not among the agency's vouched numbers: add it to [[caller_ids]] with its "
        "owner, vouched_by and vouched_on (16 CFR 310.4(a)(8)).")
