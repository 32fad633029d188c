"""The compliance gate: checked immediately before every dial, text and callback.

`ComplianceGate.decide_many()` resolves locations (pure), fetches every list hit and attempt
count for the whole batch in one Redis round trip, applies the pure rules, optionally reserves a
frequency-cap slot for each allowed contact (atomically, a second round trip), and hands every
decision to the audit sink before returning. It fails closed: a slow or unreachable Redis,
missing rule data, a failing audit sink or any internal error yields `gate_unavailable`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from compliance_rules.audit import AuditSink
from compliance_rules.model import ContactRequest, Decision, ListVersions, NumberFacts, Reason, ReasonCode
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import (
    GateOptions,
    Location,
    applicable_caps,
    decide,
    gate_unavailable_reason,
    locate,
    unavailable,
)
from compliance_rules.ruleset import RuleBook
from compliance_rules.store import DncStore, FactsQuery

log = structlog.get_logger(__name__)

DEFAULT_REDIS_BUDGET = 0.25  # seconds for one batch's Redis work, plus the per-number share below
REDIS_BUDGET_PER_NUMBER = 0.0005  # client-side pipeline cost is ~0.1 ms per number


def _utcnow() -> datetime:
    return datetime.now(UTC)


def person_keys(request: ContactRequest, location: Location) -> tuple[str, ...]:
    """The keys a person's attempts are counted under: the lead id and the number. The state caps
    count calls to a person "regardless of the number used" (Fla. Stat. 501.616(6)(b)), and a
    number dialed by hand without its lead (click-to-call) is still that person: attempts under
    either key count, once each."""
    return tuple(dict.fromkeys(key for key in (request.lead_id, location.number.e164 or request.phone) if key))


class ComplianceGate:
    """Decides "may we contact this number now, for this campaign and purpose"."""

    def __init__(
        self,
        store: DncStore,
        sink: AuditSink,
        rulebook: RuleBook | None,
        options: GateOptions | None = None,
        *,
        redis_budget: float = DEFAULT_REDIS_BUDGET,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.sink = sink
        self.rulebook = rulebook  # None: rule data failed to load -> every decision blocked
        self.options = options or GateOptions()
        self.redis_budget = redis_budget
        self.clock = clock
        self._failures = 0  # batches in a row that could not be decided
        self._lead_errors_logged: set[str] = set()  # kinds of per-lead errors already logged

    async def decide(
        self, request: ContactRequest, policy: CampaignPolicy, now: datetime | None = None, *, reserve_attempt: bool = False
    ) -> Decision:
        """One decision (see `decide_many`)."""
        return (await self.decide_many([request], policy, now, reserve_attempts=reserve_attempt))[0]

    async def decide_many(
        self,
        requests: Sequence[ContactRequest],
        policy: CampaignPolicy,
        now: datetime | None = None,
        *,
        reserve_attempts: bool = False,
    ) -> list[Decision]:
        """Decide a batch for one campaign.

        `reserve_attempts=True` is for the check made at the instant of dialing: each allowed
        contact also takes one slot of every frequency cap that applies, atomically, and is
        blocked with `frequency_cap` if another controller took the last one first.
        """
        now = now or self.clock()
        ids = [str(uuid.uuid4()) for _ in requests]
        try:
            decisions = await self._decide(requests, policy, now, ids, reserve_attempts)
        except Exception as error:  # fail closed on anything, including bugs
            # Said once per outage (a campaign asks many times a second), with how many failed.
            self._failures += 1
            if self._failures == 1:
                log.error("compliance_gate_failed", error=repr(error), batch=len(requests))
            why = "Redis did not answer within the budget" if isinstance(error, TimeoutError) else type(error).__name__
            decisions = [unavailable(r, policy, now, i, why) for r, i in zip(requests, ids, strict=True)]
        else:
            if self._failures:
                log.warning("compliance_gate_recovered", failed_batches=self._failures)
                self._failures = 0
        try:
            await self.sink.record(decisions)
        except Exception as error:
            # 'Never allowed unless recorded': the contact must not happen without its audit row.
            log.error("compliance_audit_failed", error=repr(error), batch=len(decisions))
            reason = gate_unavailable_reason(f"the decision could not be recorded ({type(error).__name__})")
            decisions = [d if not d.allowed else d.blocked_because(reason) for d in decisions]
        return decisions

    async def _decide(
        self,
        requests: Sequence[ContactRequest],
        policy: CampaignPolicy,
        now: datetime,
        ids: Sequence[str],
        reserve_attempts: bool,
    ) -> list[Decision]:
        book = self.rulebook
        if book is None:
            return [unavailable(r, policy, now, i, "the rule data is missing or invalid") for r, i in zip(requests, ids, strict=True)]
        # One lead whose data cannot be judged (a malformed value from the CRM) is blocked with
        # gate_unavailable on its own; the rest of the batch is still decided.
        errors: dict[int, str] = {}
        locations: list[Location | None] = []
        for index, request in enumerate(requests):
            try:
                locations.append(locate(request))
            except Exception as error:
                locations.append(None)
                errors[index] = type(error).__name__
        queries: list[FactsQuery] = []
        for request, location in zip(requests, locations, strict=True):
            if location is not None and location.number.ok:
                queries.append(self._query(request, location, policy, book))
        async with asyncio.timeout(self._budget(len(queries))):
            versions, fetched = await self.store.fetch(queries, now) if queries else (ListVersions(), [])
        facts_iter = iter(fetched)
        decisions: list[Decision] = []
        for index, (request, location, decision_id) in enumerate(zip(requests, locations, ids, strict=True)):
            if location is None:
                decisions.append(unavailable(request, policy, now, decision_id, f"the lead could not be located ({errors[index]})"))
                continue
            facts = next(facts_iter) if location.number.ok else NumberFacts()
            try:
                decisions.append(decide(request, location, facts, versions, policy, book, now, decision_id, self.options))
            except Exception as error:
                errors[index] = type(error).__name__
                decisions.append(unavailable(request, policy, now, decision_id, f"the lead could not be judged ({errors[index]})"))
        if errors and not set(errors.values()) <= self._lead_errors_logged:
            # Said once per kind of error (a campaign asks about the same lead many times a second).
            self._lead_errors_logged |= set(errors.values())
            log.error("compliance_gate_leads_undecided", errors=sorted(set(errors.values())), leads=len(errors),
                      batch=len(requests))
        if reserve_attempts:
            decisions = await self._reserve(requests, locations, decisions, policy, book, now)
        return decisions

    def _budget(self, count: int) -> float:
        return self.redis_budget + count * REDIS_BUDGET_PER_NUMBER

    def _query(self, request: ContactRequest, location: Location, policy: CampaignPolicy, book: RuleBook) -> FactsQuery:
        state_lists = tuple(f"state:{s}" for s in location.states if s in book.state_dnc_lists)
        return FactsQuery(location.number, state_lists, person_keys(request, location), policy.cap_subject)

    async def _reserve(
        self,
        requests: Sequence[ContactRequest],
        locations: Sequence[Location | None],
        decisions: list[Decision],
        policy: CampaignPolicy,
        book: RuleBook,
        now: datetime,
    ) -> list[Decision]:
        wanted: list[tuple[int, Location]] = []
        reservations: list[tuple[str, str | Sequence[str], list[tuple[int, int]]]] = []
        for index, (request, location, decision) in enumerate(zip(requests, locations, decisions, strict=True)):
            if location is None or not decision.allowed or not request.counts_toward_caps:
                continue
            caps = [(m, w) for m, w, _ in applicable_caps(location, policy, book, now, self.options, request.channel)]
            wanted.append((index, location))
            reservations.append((policy.cap_subject, person_keys(request, location), caps))
        async with asyncio.timeout(self._budget(len(reservations))):
            granted = await self.store.reserve_attempts(reservations, now)
        for (index, location), ok in zip(wanted, granted, strict=True):
            if not ok:
                decisions[index] = decisions[index].blocked_because(
                    Reason(
                        ReasonCode.FREQUENCY_CAP,
                        "another attempt took the last slot of a frequency cap just now",
                        "; ".join(c for _, _, c in applicable_caps(location, policy, book, now, self.options,
                                                                   requests[index].channel)),
                    )
                )
        return decisions

