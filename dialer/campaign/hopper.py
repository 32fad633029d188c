"""The lead hopper of a campaign: which leads to dial next, in what order, and when to retry.
Pure: the runtime loads candidates from the CRM, pre-checks them with the gate in batches,
`add`s the allowed ones, `take`s one per line the pacer opens (and asks the gate again, with a
cap reservation, right before the dial), and reports each attempt's outcome with `finished`.

A lead is never in two places at once: queued or in flight leads are not added again, and a
lead just attempted is kept out (locally) until its next-attempt time, so a CRM row that has
not yet caught up cannot bring it back early.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True)
class RetryRule:
    """After an attempt ending this way: wait `delay` seconds; stop after `max_attempts` in all."""

    delay: float
    max_attempts: int


# CRM call outcome -> retry rule. Outcomes not listed end the lead's run in the campaign
# (answered: the agent's disposition decides what follows; unallocated/rejected: a bad number).
DEFAULT_RETRY_RULES: Mapping[str, RetryRule] = {
    "busy": RetryRule(10 * MINUTE, 6),
    "no_answer": RetryRule(2 * HOUR, 6),
    "congestion": RetryRule(5 * MINUTE, 6),
    "machine": RetryRule(4 * HOUR, 4),
    "abandoned": RetryRule(1 * HOUR, 6),
    "failed": RetryRule(15 * MINUTE, 3),
    "canceled": RetryRule(0.0, 6),
    "blocked": RetryRule(30 * MINUTE, 1000),
}


@dataclass(frozen=True)
class RetryDecision:
    done: bool
    next_attempt_at: float | None
    reason: str


def after_attempt(
    outcome: str, attempts: int, now: float, rules: Mapping[str, RetryRule] = DEFAULT_RETRY_RULES
) -> RetryDecision:
    """What happens to a lead after its `attempts`-th attempt ended with `outcome`."""
    rule = rules.get(outcome)
    if rule is None:
        return RetryDecision(True, None, f"outcome {outcome}")
    if attempts >= rule.max_attempts:
        return RetryDecision(True, None, f"{attempts} attempts (max {rule.max_attempts} after {outcome})")
    return RetryDecision(False, now + rule.delay, f"retry after {outcome}")


@dataclass(frozen=True)
class HopperEntry(Generic[T]):
    """A lead ready to dial. `payload` is whatever the runtime needs to dial it (the CRM lead)."""

    lead_id: str
    phone: str
    attempts: int
    payload: T
    priority: int = 0
    owner_agent_id: str | None = None
    """A scheduled callback that belongs to one agent: dialed only while that agent is ready."""


class Hopper(Generic[T]):
    """Leads pre-checked and ready, in order; leads in flight; leads cooling down locally."""

    def __init__(self, target_size: int = 50) -> None:
        if target_size < 1:
            raise ValueError(f"target_size must be >= 1, got {target_size}")
        self.target_size = target_size
        self._queue: deque[HopperEntry[T]] = deque()
        self._in_flight: dict[str, HopperEntry[T]] = {}
        self._cooling: dict[str, float | None] = {}  # lead -> local next attempt (None: done)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> frozenset[str]:
        return frozenset(self._in_flight)

    def wanted(self) -> int:
        """How many more leads to load and pre-check."""
        return max(0, self.target_size - len(self._queue))

    def excluded(self, now: float) -> set[str]:
        """Lead ids the CRM query must skip: queued, in flight, or cooling down."""
        self._cooling = {lead: until for lead, until in self._cooling.items() if until is None or until > now}
        return {entry.lead_id for entry in self._queue} | set(self._in_flight) | set(self._cooling)

    def _blocked(self, lead_id: str, now: float) -> bool:
        if lead_id in self._in_flight or any(entry.lead_id == lead_id for entry in self._queue):
            return True
        if lead_id in self._cooling:
            until = self._cooling[lead_id]
            return until is None or until > now
        return False

    def add(self, entries: Iterable[HopperEntry[T]], now: float) -> int:
        """Queue pre-checked leads at the back (in the order given); returns how many were new."""
        added = 0
        for entry in entries:
            if not self._blocked(entry.lead_id, now):
                self._queue.append(entry)
                added += 1
        return added

    def push_front(self, entry: HopperEntry[T], now: float) -> bool:
        """Speed-to-lead: this lead goes first (if it is not already queued or in flight)."""
        if entry.lead_id in self._in_flight:
            return False
        self._queue = deque(e for e in self._queue if e.lead_id != entry.lead_id)
        self._cooling.pop(entry.lead_id, None)
        self._queue.appendleft(entry)
        del now
        return True

    def take(self, ready_agents: frozenset[str] | None = None) -> HopperEntry[T] | None:
        """The next lead to dial, now in flight; None when there is none to dial now.

        With `ready_agents`, a callback owned by an agent is passed over (it keeps its place)
        unless its owner is among them; None: ownership is not checked.
        """
        for index, entry in enumerate(self._queue):
            if ready_agents is None or entry.owner_agent_id is None or entry.owner_agent_id in ready_agents:
                del self._queue[index]
                self._in_flight[entry.lead_id] = entry
                return entry
        return None

    def take_lead(self, lead_id: str) -> HopperEntry[T] | None:
        """This queued lead, now in flight (a speed-to-lead dial); None if it is not queued."""
        for index, entry in enumerate(self._queue):
            if entry.lead_id == lead_id:
                del self._queue[index]
                self._in_flight[lead_id] = entry
                return entry
        return None

    def put_back(self, entry: HopperEntry[T], until: float | None) -> None:
        """A lead taken but not dialed (the gate's last check said no): cool it down."""
        self._in_flight.pop(entry.lead_id, None)
        self._cooling[entry.lead_id] = until

    def finished(self, lead_id: str, decision: RetryDecision) -> None:
        """The attempt is over; the lead stays out until its next attempt (or for good)."""
        self._in_flight.pop(lead_id, None)
        self._cooling[lead_id] = None if decision.done else decision.next_attempt_at

    def clear(self) -> list[HopperEntry[T]]:
        """Drop the queued leads (campaign stopped); in-flight ones finish normally."""
        dropped = list(self._queue)
        self._queue.clear()
        return dropped
