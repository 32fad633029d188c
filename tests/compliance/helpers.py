"""Helpers for driving the pure rules with explicit times."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from compliance_rules.model import (
    ConsentRecord,
    ContactRequest,
    Decision,
    DialMode,
    ListVersions,
    NumberFacts,
)
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import GateOptions, decide, locate
from compliance_rules.ruleset import RuleBook, load_rulebook

BOOK: RuleBook = load_rulebook()
ALL_STATES = ("CO", "FL", "IN", "LA", "MA", "MS", "MO", "OK", "PA", "TN", "TX", "WY")


def utc(text: str) -> datetime:
    """'2026-03-02T13:00' -> aware UTC datetime."""
    return datetime.fromisoformat(text + "+00:00")


def fresh_versions(now: datetime, age_days: int = 0) -> ListVersions:
    """Every list loaded `age_days` before `now` (default: that day, so a state's new edition
    published today is the one loaded)."""
    day = (now - timedelta(days=age_days)).date().isoformat()
    dates = {"federal": day} | {f"state:{s}": day for s in ALL_STATES}
    return ListVersions(dates)


def check(
    phone: str,
    at: datetime,
    *,
    zip_code: str | None = None,
    state: str | None = None,
    hits: Iterable[str] = (),
    attempts: Iterable[datetime] = (),
    consents: Iterable[ConsentRecord] = (),
    policy: CampaignPolicy | None = None,
    dial_mode: DialMode | None = DialMode.MANUAL,
    versions: ListVersions | None = None,
    options: GateOptions | None = None,
    lead_id: str | None = "lead-1",
) -> Decision:
    """Decide one contact. Manual dialing by default, so state consent rules stay out of the
    way of window tests; consent tests pass `dial_mode` explicitly."""
    request = ContactRequest(
        phone, lead_id=lead_id, zip_code=zip_code, state=state, consents=tuple(consents), dial_mode=dial_mode
    )
    return decide(
        request,
        locate(request),
        NumberFacts(frozenset(hits), tuple(attempts)),
        versions if versions is not None else fresh_versions(at),
        policy or CampaignPolicy(campaign_id="c1"),
        BOOK,
        at,
        "decision-1",
        options or GateOptions(),
    )


def codes(decision: Decision) -> set[str]:
    return {reason.code.value for reason in decision.reasons}


__all__ = ["BOOK", "check", "codes", "fresh_versions", "replace", "utc"]
