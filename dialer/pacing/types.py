"""The pacer seam: what the campaign runtime (and the simulator) hands a pacer, and what it gets back.

A pacer is pure logic: no IO, no clock. The runtime calls `observe(event)` for every
outcome it measures and `decide(snapshot, now)` on its pacing tick (about once a second);
the answer is the number of new lines to dial right now. Trunk, calls-per-second and
lead-list limits are applied by the caller after the pacer has spoken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from compliance_rules.telemarketing import ABANDON_LIMIT
from compliance_rules.telemarketing import ABANDON_WINDOW_DAYS as ABANDON_WINDOW_DAYS
from compliance_rules.telemarketing import AbandonTally as AbandonTally

# The limit the pacers steer under (47 CFR 64.1200(a)(7): `compliance_rules.telemarketing`).
REGULATORY_ABANDON_LIMIT = ABANDON_LIMIT


class DialOutcome(StrEnum):
    """How a dial ended, as the runtime classifies it (after AMD when the call was answered)."""

    HUMAN = "human"
    MACHINE = "machine"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNALLOCATED = "unallocated"


class EventKind(StrEnum):
    """Measured happenings a pacer learns from."""

    DIAL_PLACED = "dial_placed"
    # AMD (or the absence of it) declared a person: the call now needs an agent.
    # `seconds` is the time from the dial to that decision.
    HUMAN_ANSWERED = "human_answered"
    # A line ended without ever needing an agent; `seconds` is the dial's duration.
    DIAL_ENDED = "dial_ended"
    # A person was bridged to an agent; `seconds` is the wait after the AMD decision.
    CALL_BRIDGED = "call_bridged"
    # A person was not bridged within 2 s of the greeting (47 CFR 64.1200(a)(7)).
    CALL_ABANDONED = "call_abandoned"
    # The answered call gave up waiting for an agent and got the safe-harbor message
    # (VICIdial's DROP status: `drop_call_seconds` after the AMD decision).
    CALL_DROPPED = "call_dropped"
    TALK_ENDED = "talk_ended"
    WRAP_ENDED = "wrap_ended"


@dataclass(frozen=True, slots=True)
class PacingEvent:
    """One measured event. `seconds` is the duration the kind documents (0 when none)."""

    kind: EventKind
    now: float
    seconds: float = 0.0
    outcome: DialOutcome | None = None


@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """The campaign's state at one instant, in absolute seconds (`now` is on the same clock).

    Agents are counted once: ready, talking, wrapping up, or paused (break, not dialable).
    Lines are dials placed and not yet classified (ringing, or answered and in AMD).
    """

    ready_since: tuple[float, ...]
    talking_since: tuple[float, ...]
    wrapping_since: tuple[float, ...]
    paused_agents: int
    ringing_since: tuple[float, ...]
    calls_waiting: int
    free_lines: int
    abandon_tally: AbandonTally = field(default_factory=AbandonTally)

    @property
    def ready_agents(self) -> int:
        return len(self.ready_since)

    @property
    def logged_in_agents(self) -> int:
        return (
            len(self.ready_since) + len(self.talking_since) + len(self.wrapping_since) + self.paused_agents
        )


class Pacer(Protocol):
    """What the campaign runtime calls. Implementations keep no clock and do no IO."""

    name: str

    def observe(self, event: PacingEvent) -> None:
        """Learn from one measured event."""

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        """Lines to dial right now (>= 0), before trunk and calls-per-second caps."""
        ...
