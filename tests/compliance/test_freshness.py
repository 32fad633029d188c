"""Freshness of the DNC list copies: each list's rule at its edges, the gate's `registry_stale`,
the status the operators see, and a property: no copy older than its rule allows is relied on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance_rules.freshness import FreshnessStatus, judge, list_freshness
from compliance_rules.model import ListVersions
from compliance_rules.rules import GateOptions
from compliance_rules.ruleset import RefreshRule, RuleDataError, parse_rulebook
from tests.compliance.helpers import ALL_STATES, BOOK, check, codes, fresh_versions

pytestmark = pytest.mark.timeout(120)

# One number per state list (area code in that state); New York has no list of its own.
PHONE_IN = {
    "CO": "303-555-0142", "FL": "305-555-0142", "IN": "317-555-0142", "LA": "504-555-0142",
    "MA": "617-555-0142", "MS": "601-555-0142", "MO": "314-555-0142", "OK": "405-555-0142",
    "PA": "215-555-0142", "TN": "615-555-0142", "TX": "214-555-0142", "WY": "307-555-0142",
}
NY = "212-555-0142"


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 17, 0, tzinfo=UTC)


def stale_reasons(phone: str, list_name: str, copy_date: date, day: date) -> list[str]:
    """The `registry_stale` messages when `list_name`'s copy is dated `copy_date` and every other
    list is loaded that day."""
    now = at_noon(day)
    versions = ListVersions({**fresh_versions(now).dates, list_name: copy_date.isoformat()})
    decision = check(phone, now, versions=versions)
    return [r.message for r in decision.reasons if r.code.value == "registry_stale"]


# (list, a copy's date, the last day it may be used): worked out by hand from each rule's text.
EDGES = [
    ("federal", date(2026, 1, 31), date(2026, 3, 3)),  # obtained no more than 31 days before the call
    ("state:CO", date(2026, 1, 1), date(2026, 4, 30)),  # updated within 30 days after Apr 1
    ("state:FL", date(2026, 1, 1), date(2026, 3, 31)),  # the then-current quarterly listing
    ("state:FL", date(2026, 3, 31), date(2026, 3, 31)),  # a download the day before: the same edition
    ("state:IN", date(2025, 12, 10), date(2025, 12, 31)),  # the Q1 list is available in December...
    ("state:IN", date(2026, 1, 1), date(2026, 3, 31)),  # ...but a copy dated Jan 1 is that edition
    ("state:LA", date(2026, 1, 15), date(2026, 1, 31)),  # updated monthly
    ("state:MA", date(2026, 1, 1), date(2026, 5, 30)),  # binds 60 days after Apr 1
    ("state:MS", date(2026, 2, 1), date(2026, 2, 28)),
    ("state:MO", date(2026, 10, 1), date(2026, 12, 31)),
    ("state:OK", date(2026, 10, 1), date(2027, 1, 30)),  # 30 days after Jan 1, across the year
    ("state:PA", date(2026, 12, 31), date(2027, 1, 30)),  # effective 30 days after the Jan 1 list
    ("state:TN", date(2026, 3, 1), date(2026, 4, 29)),  # 30 days after the end of March
    ("state:TX", date(2026, 1, 1), date(2026, 5, 30)),  # not more than 60 days after Apr 1
    ("state:TX", date(2026, 10, 1), date(2027, 3, 1)),  # Jan 1 + 60 days
    ("state:WY", date(2026, 1, 1), date(2026, 3, 2)),  # on the TPS list for more than 60 days
    ("litigator", date(2026, 1, 31), date(2026, 3, 3)),  # agency policy: 31 days
]


@pytest.mark.parametrize(("list_name", "copy_date", "last_day"), EDGES)
def test_each_rule_at_its_edge(list_name: str, copy_date: date, last_day: date) -> None:
    phone = PHONE_IN.get(list_name.removeprefix("state:"), NY)
    assert stale_reasons(phone, list_name, copy_date, last_day) == []
    after = stale_reasons(phone, list_name, copy_date, last_day + timedelta(days=1))
    assert len(after) == 1
    # The reason names the list and the copy's date.
    list_words = {"federal": "National DNC Registry", "litigator": "litigator list"}.get(
        list_name, f"{list_name[6:]} state Do Not Call list"
    )
    assert list_words in after[0] and copy_date.isoformat() in after[0] and last_day.isoformat() in after[0]


def test_every_state_that_keeps_a_list_has_a_cited_refresh_rule() -> None:
    assert set(BOOK.state_dnc_lists) == set(ALL_STATES)
    for state in ALL_STATES:
        rule = BOOK.refresh[f"state:{state}"]
        assert rule.citation and (rule.max_age_days or rule.published)
    # Where the source is a secondary one, the data says so.
    assert BOOK.refresh["state:OK"].confidence.value == "low"
    assert BOOK.refresh["state:TX"].confidence.value == "high"


def test_a_stale_state_list_blocks_only_that_states_leads() -> None:
    day = date(2026, 6, 5)
    assert stale_reasons(PHONE_IN["TX"], "state:TX", date(2026, 1, 1), day)
    assert stale_reasons(NY, "state:TX", date(2026, 1, 1), day) == []
    # The address counts too: a New York number living in Dallas.
    now = at_noon(day)
    versions = ListVersions({**fresh_versions(now).dates, "state:TX": "2026-01-01"})
    assert "registry_stale" in codes(check(NY, now, zip_code="75201", versions=versions))


def test_litigator_list_is_judged_only_when_its_copy_is_dated() -> None:
    now = at_noon(date(2026, 6, 1))
    undated = fresh_versions(now)
    assert "litigator" not in undated.dates and check(NY, now, versions=undated).allowed
    assert stale_reasons(NY, "litigator", date(2026, 4, 1), date(2026, 6, 1))


def test_unreadable_and_far_future_copy_dates_are_not_trusted() -> None:
    day = date(2026, 6, 1)
    assert stale_reasons(PHONE_IN["FL"], "state:FL", date(2026, 7, 1), day) == []  # next edition, loaded early
    assert stale_reasons(PHONE_IN["FL"], "state:FL", date(2026, 7, 3), day)  # 32 days ahead
    now = at_noon(day)
    versions = ListVersions({**fresh_versions(now).dates, "state:FL": "last spring"})
    assert "registry_stale" in codes(check(PHONE_IN["FL"], now, versions=versions))


def test_the_federal_age_can_be_tightened_by_option() -> None:
    now = at_noon(date(2026, 3, 20))
    versions = ListVersions({**fresh_versions(now).dates, "federal": "2026-03-10"})
    assert check(NY, now, versions=versions).allowed
    assert codes(check(NY, now, versions=versions, options=GateOptions(registry_max_age_days=7))) == {"registry_stale"}


def test_status_lists_every_list_with_its_deadline_and_warns_ahead() -> None:
    now = at_noon(date(2026, 5, 20))
    dates = {"federal": "2026-05-01", "state:TX": "2026-01-01", "state:FL": "2026-04-01", "litigator": "2026-04-01",
             "internal": "2026-05-20"}
    judged = {f.list_name: f for f in list_freshness(BOOK, dates, now)}
    order = list(judged)
    assert order[0] == "federal" and order[-1] == "litigator"
    assert set(judged) == {"federal", "litigator", *(f"state:{s}" for s in ALL_STATES)}  # not internal
    assert judged["federal"].deadline == date(2026, 6, 1) and judged["federal"].status is FreshnessStatus.DUE_SOON
    assert judged["state:TX"].deadline == date(2026, 5, 30) and judged["state:TX"].days_left == 10
    assert judged["state:TX"].status is FreshnessStatus.DUE_SOON
    assert judged["state:FL"].deadline == date(2026, 6, 30) and judged["state:FL"].status is FreshnessStatus.OK
    assert judged["litigator"].status is FreshnessStatus.STALE and judged["litigator"].days_left == -18
    assert judged["state:CO"].status is FreshnessStatus.MISSING and judged["state:CO"].deadline is None
    record = judged["state:TX"].to_record()
    assert record["deadline"] == "2026-05-30" and record["status"] == "due_soon" and "304.052" in str(record["citation"])


def test_due_soon_starts_exactly_the_warning_period_before_the_deadline() -> None:
    rule = RefreshRule("test", max_age_days=31)
    copy = date(2026, 1, 1)  # usable through Feb 1
    warn = BOOK.refresh_warning_days
    assert judge("federal", rule, copy, date(2026, 2, 1) - timedelta(days=warn), warn).status is FreshnessStatus.OK
    assert judge("federal", rule, copy, date(2026, 2, 2) - timedelta(days=warn), warn).status is FreshnessStatus.DUE_SOON
    assert judge("federal", rule, copy, date(2026, 2, 1), warn).status is FreshnessStatus.DUE_SOON
    assert judge("federal", rule, copy, date(2026, 2, 2), warn).status is FreshnessStatus.STALE


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("refresh: {published: quarterly, grace_days: 60,", "refresh: {published: weekly, grace_days: 60,", "quarterly, monthly"),
        ("refresh: {max_age_days: 60,", "refresh: {max_age_days: 60, published: monthly,", "exactly one of"),
        ("refresh: {max_age_days: 60,", "refresh: {max_age_days: 0,", "at least 1"),
        ("published: quarterly, grace_days: 30,", "published: [\"02-30\"], grace_days: 30,", "not an 'MM-DD' date"),
        ("published: quarterly, grace_days: 30,", "published: quarterly, grace_days: -1,", "grace_days"),
    ],
)
def test_malformed_refresh_rules_are_refused(old: str, new: str, message: str) -> None:
    from compliance_rules.ruleset import DEFAULT_RULES_PATH

    text = DEFAULT_RULES_PATH.read_text()
    assert old in text
    with pytest.raises(RuleDataError, match=message):
        parse_rulebook(text.replace(old, new, 1))


def test_a_state_list_without_a_refresh_rule_is_refused() -> None:
    from compliance_rules.ruleset import DEFAULT_RULES_PATH

    text = DEFAULT_RULES_PATH.read_text()
    start = text.index("  CO:\n    citation:")
    end = text.index("  FL:\n")
    bare = text[:start] + '  CO:\n    citation: "Colo. Rev. Stat. 6-1-901 et seq."\n' + text[end:]
    with pytest.raises(RuleDataError, match=r"state_dnc_lists\.CO\.refresh"):
        parse_rulebook(bare)


# -- the property: a copy older than its rule allows is never relied on ---------------------------
def too_old(rule: RefreshRule, copy_date: date, today: date) -> bool:
    """An independent reading of the rule: some edition published after the copy has been
    binding for `grace_days` by today (or the copy is older than `max_age_days`); or the copy is
    dated ahead of today and is not an edition published early (at most 31 days, on its day)."""
    if copy_date > today:
        if rule.max_age_days is not None:
            return True
        return (copy_date.month, copy_date.day) not in rule.published or (copy_date - today).days > 31
    if rule.max_age_days is not None:
        return (today - copy_date).days > rule.max_age_days
    for year in range(copy_date.year, today.year + 1):
        for month, day in rule.published:
            edition = date(year, month, day)
            if copy_date < edition and edition + timedelta(days=rule.grace_days) <= today:
                return True
    return False


LISTS = sorted(BOOK.refresh)
days = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))


@settings(max_examples=600, deadline=None)
@given(list_name=st.sampled_from(LISTS), copy_date=days, age=st.integers(-31, 500))
def test_no_copy_older_than_its_rule_allows_is_relied_on(list_name: str, copy_date: date, age: int) -> None:
    today = copy_date + timedelta(days=age)
    phone = PHONE_IN.get(list_name.removeprefix("state:"), NY)
    now = at_noon(today)
    versions = ListVersions({**fresh_versions(now).dates, list_name: copy_date.isoformat()})
    decision = check(phone, now, versions=versions)
    stale = [r for r in decision.reasons if r.code.value == "registry_stale"]
    if too_old(BOOK.refresh[list_name], copy_date, today):
        assert not decision.allowed
        assert len(stale) == 1 and copy_date.isoformat() in stale[0].message
    else:
        assert stale == []
