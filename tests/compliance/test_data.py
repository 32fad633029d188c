"""Rule data and campaign policy files: validated at load, with errors that name the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance_rules.model import DialMode, Purpose
from compliance_rules.optout import is_opt_out_keyword
from compliance_rules.policy import PolicyError, load_policy, policy_from_mapping
from compliance_rules.ruleset import DEFAULT_RULES_PATH, RuleDataError, load_rulebook, parse_rulebook

pytestmark = pytest.mark.timeout(30)


def test_shipped_rule_data_has_a_citation_on_every_rule() -> None:
    book = load_rulebook()
    states = {rule.state for rule in book.rules}
    assert {"AL", "CT", "FL", "KY", "LA", "MD", "MA", "MI", "MS", "OK", "OR", "PA", "RI", "TX", "UT", "WA", "WY"} <= states
    assert all(rule.citation for rule in book.rules)
    assert all(rule.holidays.citation for rule in book.rules if rule.holidays)
    assert all(rule.cap.citation for rule in book.rules if rule.cap)
    assert {"FL", "TX", "PA"} <= set(book.state_dnc_lists)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('sun: [["12:00","21:00"]]}', 'sun: [["21:00","12:00"]]}', "is not before end"),
        ("set: AL_HOLIDAYS,", "set: NO_SUCH_SET,", "unknown holiday"),
        ('effective_from: "2023-10-01"', 'effective_from: "soon"', "not a YYYY-MM-DD date"),
        ('extra_zones: ["America/Chicago"]', 'extra_zones: ["Mars/Olympus"]', "unknown time zone"),
        ("confidence: high\n    effective_from: \"2021-07-01\"", "confidence: sure\n    effective_from: \"2021-07-01\"", "confidence"),
    ],
)
def test_malformed_rule_data_is_refused(old: str, new: str, message: str) -> None:
    text = DEFAULT_RULES_PATH.read_text()
    assert old in text
    with pytest.raises(RuleDataError, match=message):
        parse_rulebook(text.replace(old, new, 1))


def test_missing_rule_file(tmp_path: Path) -> None:
    with pytest.raises(RuleDataError, match="cannot read rule data"):
        load_rulebook(tmp_path / "none.yaml")


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"campaign_id": 7, "purpose": "medicare_marketing", "dial_mode": "power", "margin_seconds": 120}')
    policy = load_policy(path)
    assert policy.campaign_id == "7" and policy.purpose is Purpose.MEDICARE_MARKETING
    assert policy.dial_mode is DialMode.POWER and policy.margin.total_seconds() == 120 and policy.needs_ptc


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"purpose": "fundraising"}, "purpose must be one of"),
        ({"dial_mode": "robot"}, "dial_mode must be one of"),
        ({"margin_seconds": -1}, "margin_seconds"),
        ({"max_attempts_per_24h": 0}, "max_attempts_per_24h"),
        ({"colour": "red"}, "unknown campaign policy field"),
        ({"window": {"mon": []}}, "hours must list exactly the days"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_policy_names_the_field(raw: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_mapping(raw)


# "stop by at 5" counts: a keyword surrounded by other words is honoured (47 CFR 64.1200(a)(10)).
@pytest.mark.parametrize(("text", "expected"), [("STOP", True), ("Stop.", True), ("opt-out", True), ("unsubscribe ", True), ("stop by at 5", True), ("yes", False)])
def test_sms_opt_out_keywords(text: str, expected: bool) -> None:
    assert is_opt_out_keyword(text) is expected
