"""How fresh each loaded DNC list copy is: the gate's `registry_stale` rule and the status the
operators see (`dialer dnc status`, the supervisor console's alerts). Pure: dates in, values out.

Every list with a refresh rule in the rule data is judged: the federal registry (31 days,
47 CFR 64.1200(c)(2)(i)(D)), each state list (its publication schedule and grace period) and the
litigator list (agency policy, only when its copy carries a date). "Today" is the UTC date of the
instant judged (ahead of every mainland US local date, so a copy turns stale a few hours early,
never late); the gate passes the later of that and the lead's local dates, since Guam and the
Northern Marianas (UTC+10) reach a new date before UTC does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from compliance_rules.model import Reason, ReasonCode
from compliance_rules.ruleset import Confidence, RefreshRule, RuleBook

FEDERAL = "federal"
LITIGATOR = "litigator"
# Editions are available at most about a month before they take effect (Indiana publishes in
# December for January 1): a copy dated further ahead than this is a mistake and is not trusted.
FUTURE_TOLERANCE = timedelta(days=31)


class FreshnessStatus(StrEnum):
    OK = "ok"
    DUE_SOON = "due_soon"  # still usable; the deadline is within the warning period
    STALE = "stale"  # past its deadline: the gate refuses the leads it covers
    MISSING = "missing"  # no copy loaded (blocks for the federal registry and state lists)


@dataclass(frozen=True)
class ListFreshness:
    """One list: its copy's date, the last day that copy may be used, and what that means today."""

    list_name: str  # "federal", "state:TX", "litigator"
    copy_date: date | None
    deadline: date | None  # the last day the copy may be used (None when no copy is loaded)
    status: FreshnessStatus
    days_left: int | None  # days from today to the deadline (negative once stale)
    rule: str  # the rule in words
    citation: str
    confidence: Confidence

    def to_record(self) -> dict[str, object]:
        return {
            "list": self.list_name,
            "copy_date": self.copy_date.isoformat() if self.copy_date else None,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "status": self.status.value,
            "days_left": self.days_left,
            "rule": self.rule,
            "citation": self.citation,
            "confidence": self.confidence.value,
        }


def utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()


def deadline(rule: RefreshRule, copy_date: date) -> date:
    """The last day a copy dated `copy_date` may be used."""
    return rule.stale_from(copy_date) - timedelta(days=1)


def parse_copy_date(text: str | None) -> date | None:
    """A stored copy date (`YYYY-MM-DD`), None when there is none. An unreadable date is read
    as the oldest possible one, so that copy is stale (fail closed), never trusted."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return date.min


def judge(
    list_name: str,
    rule: RefreshRule,
    copy_date: date | None,
    today: date,
    warning_days: int,
) -> ListFreshness:
    """The freshness of one list's copy on `today`."""
    if copy_date is None:
        return ListFreshness(list_name, None, None, FreshnessStatus.MISSING, None, rule.describe(), rule.citation,
                             rule.confidence)
    if copy_date > today and not _may_be_ahead(rule, copy_date, today):
        return ListFreshness(list_name, copy_date, None, FreshnessStatus.STALE, None, rule.describe(), rule.citation,
                             rule.confidence)
    last_day = deadline(rule, copy_date)
    days_left = (last_day - today).days
    if days_left < 0:
        status = FreshnessStatus.STALE
    elif days_left < warning_days:
        status = FreshnessStatus.DUE_SOON
    else:
        status = FreshnessStatus.OK
    return ListFreshness(list_name, copy_date, last_day, status, days_left, rule.describe(), rule.citation,
                         rule.confidence)


def _may_be_ahead(rule: RefreshRule, copy_date: date, today: date) -> bool:
    """Whether a copy dated after `today` can be real: only an edition published ahead of its
    date (Indiana's January list comes out in December), dated exactly that edition's day and at
    most FUTURE_TOLERANCE ahead. A continuously published list (the federal registry) has no
    future copies (`dialer dnc import` dates a copy by the UTC date). Anything else is a mistake:
    a typo of last year's date would otherwise be trusted for months, so the copy is not relied on."""
    if rule.max_age_days is not None:
        return False
    return (copy_date.month, copy_date.day) in rule.published and copy_date <= today + FUTURE_TOLERANCE


def rule_for(book: RuleBook, list_name: str, registry_max_age_days: int | None = None) -> RefreshRule | None:
    """The list's refresh rule; `registry_max_age_days` (GateOptions) may tighten the federal one,
    never loosen it: 64.1200(c)(2)(i)(D) allows at most 31 days whatever an option says."""
    rule = book.refresh.get(list_name)
    if rule is not None and list_name == FEDERAL and registry_max_age_days is not None:
        ceiling = rule.max_age_days if rule.max_age_days is not None else registry_max_age_days
        return RefreshRule(rule.citation, rule.confidence, max_age_days=min(registry_max_age_days, ceiling))
    return rule


def list_freshness(
    book: RuleBook,
    dates: Mapping[str, str],
    now: datetime,
    *,
    registry_max_age_days: int | None = None,
) -> tuple[ListFreshness, ...]:
    """Every list with a refresh rule, with its copy's date, deadline and status at `now`.

    `dates` is the list name -> copy date map the store keeps (`DncStore.versions()` or a
    decision's `ListVersions.dates`). For the supervisor console's alerts and `dialer dnc status`.
    """
    today = utc_today(now)
    result = []
    for name in sorted(book.refresh, key=_display_order):
        rule = rule_for(book, name, registry_max_age_days)
        assert rule is not None
        result.append(judge(name, rule, parse_copy_date(dates.get(name)), today, book.refresh_warning_days))
    return tuple(result)


def _display_order(name: str) -> tuple[int, str]:
    return ({FEDERAL: 0, LITIGATOR: 2}.get(name, 1), name)


def stale_reason(freshness: ListFreshness, citation: str) -> Reason | None:
    """`registry_stale` for a copy past its deadline (naming the list and its date), else None.

    A missing copy is not judged here: the caller decides whether that list is required.
    """
    if freshness.status is not FreshnessStatus.STALE or freshness.copy_date is None:
        return None
    if freshness.deadline is None:
        return Reason(
            ReasonCode.REGISTRY_STALE,
            f"the {describe_list(freshness.list_name)} copy is dated {freshness.copy_date.isoformat()}, "
            "further in the future than any edition is published; reload it with its edition date",
            citation,
        )
    return Reason(
        ReasonCode.REGISTRY_STALE,
        f"the {describe_list(freshness.list_name)} copy from {freshness.copy_date.isoformat()} was usable "
        f"through {freshness.deadline}; the rule is {freshness.rule}",
        citation,
    )


def describe_list(list_name: str) -> str:
    if list_name == FEDERAL:
        return "National DNC Registry"
    if list_name.startswith("state:"):
        return f"{list_name[6:]} state Do Not Call list"
    return f"{list_name} list"


__all__ = [
    "FreshnessStatus",
    "ListFreshness",
    "deadline",
    "describe_list",
    "judge",
    "list_freshness",
    "rule_for",
    "stale_reason",
]
