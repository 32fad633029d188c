"""Pacers that follow agent state with a fixed rule: preview, progressive, power, fixed ratio."""

from __future__ import annotations

from dialer.pacing.types import EventKind, PacingEvent, PacingSnapshot


def progressive_lines(snapshot: PacingSnapshot) -> int:
    """One line per ready agent not already covered by a line in flight or a waiting call.

    Every line then has an idle agent behind it, so only AMD delay can make it abandon:
    this is the safe fallback of every other pacer.
    """
    covered = len(snapshot.ringing_since) + snapshot.calls_waiting
    return max(0, snapshot.ready_agents - covered)


class PreviewPacer:
    """The agent reads the lead first; the dial goes out `preview_seconds` after they became ready."""

    name = "preview"

    def __init__(self, preview_seconds: float = 10.0) -> None:
        if preview_seconds < 0:
            raise ValueError(f"preview_seconds must be >= 0, got {preview_seconds}")
        self.preview_seconds = preview_seconds

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        done_reading = sum(1 for since in snapshot.ready_since if now - since >= self.preview_seconds)
        covered = len(snapshot.ringing_since) + snapshot.calls_waiting
        return max(0, done_reading - covered)


class ProgressivePacer:
    """One line per ready agent."""

    name = "progressive"
    decides_on_state_only = True
    observed_kinds: frozenset[EventKind] = frozenset()

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del now
        return progressive_lines(snapshot)

    def decide_counts(
        self, ready: int, talking: int, wrapping: int, paused: int, ringing: int, waiting: int, now: float
    ) -> int:
        """`decide` from the snapshot's counts alone (a simulator need not build its tuples)."""
        del talking, wrapping, paused, now
        return max(0, ready - (ringing + waiting))


class PowerPacer:
    """A fixed number of lines per ready agent (`lines_per_agent`, e.g. 2.5)."""

    name = "power"
    decides_on_state_only = True
    observed_kinds: frozenset[EventKind] = frozenset()

    def __init__(self, lines_per_agent: float = 2.0) -> None:
        if lines_per_agent < 1.0:
            raise ValueError(f"lines_per_agent must be >= 1, got {lines_per_agent}")
        self.lines_per_agent = lines_per_agent
        self.name = f"power{lines_per_agent:g}"

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del now
        goal = round(self.lines_per_agent * snapshot.ready_agents)
        return max(0, goal - len(snapshot.ringing_since) - snapshot.calls_waiting)

    def decide_counts(
        self, ready: int, talking: int, wrapping: int, paused: int, ringing: int, waiting: int, now: float
    ) -> int:
        """`decide` from the snapshot's counts alone (a simulator need not build its tuples)."""
        del talking, wrapping, paused, now
        return max(0, round(self.lines_per_agent * ready) - ringing - waiting)


class FixedRatioPacer:
    """VICIdial's RATIO mode: a constant dial level times active agents, minus every live call.

    Same placement as VICIdial (`AST_VDauto_dial.pl`): active agents are ready plus
    talking ones, and existing calls include those ringing, waiting and talking.
    """

    name = "ratio"
    decides_on_state_only = True
    observed_kinds: frozenset[EventKind] = frozenset()

    def __init__(self, dial_level: float = 2.0) -> None:
        if dial_level < 1.0:
            raise ValueError(f"dial_level must be >= 1, got {dial_level}")
        self.dial_level = dial_level
        self.name = f"ratio{dial_level:g}"

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del now
        talking = len(snapshot.talking_since)
        goal = round(self.dial_level * (snapshot.ready_agents + talking))
        existing = len(snapshot.ringing_since) + snapshot.calls_waiting + talking
        return max(0, goal - existing)

    def decide_counts(
        self, ready: int, talking: int, wrapping: int, paused: int, ringing: int, waiting: int, now: float
    ) -> int:
        """`decide` from the snapshot's counts alone (a simulator need not build its tuples)."""
        del wrapping, paused, now
        return max(0, round(self.dial_level * (ready + talking)) - (ringing + waiting + talking))
