"""VICIdial's adaptive pacing (ADAPT_HARD_LIMIT, ADAPT_TAPERED, ADAPT_AVERAGE), reimplemented as a baseline.

Follows `bin/AST_VDadapt.pl` (`calculate_dial_level`, `calculate_drops`) and
`bin/AST_VDauto_dial.pl` as specified in our research notes (anchors.md section b), with
VICIdial's defaults. It is a multiplicative integral controller on "ready agents minus
waiting calls": it never uses answer rate, ring, talk or wrap times. Abandons only enter
through clamps on the day's cumulative drop percentage and a one-minute emergency brake.

Mapping of VICIdial agent statuses onto a snapshot: READY/DONE = ready; INCALL/QUEUE =
talking; the disposition screen after a call (our wrap-up) is PAUSED, so wrap-up agents
count in the logged-in total but not in placement, like paused agents.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from dialer.pacing.types import EventKind, PacingEvent, PacingSnapshot

SECONDS_PER_DAY = 86400


class AdaptMode(StrEnum):
    HARD_LIMIT = "ADAPT_HARD_LIMIT"
    TAPERED = "ADAPT_TAPERED"
    AVERAGE = "ADAPT_AVERAGE"


@dataclass(frozen=True)
class VicidialParams:
    """VICIdial campaign settings with their defaults (schema `MySQL_AST_CREATE_tables.sql`)."""

    mode: AdaptMode = AdaptMode.HARD_LIMIT
    initial_level: float = 1.0  # auto_dial_level default 0, but ADAPT floors it at 1.0
    max_level: float = 3.0  # adaptive_maximum_level
    dropped_percentage: float = 3.0  # adaptive_dropped_percentage, % of human-answered, daily
    intensity: float = 0.0  # adaptive_intensity, -40..+40
    dl_diff_target: float = 0.0  # adaptive_dl_diff_target, ADAPT_CALC_ONLY
    latest_hhmm: int = 2100  # adaptive_latest_server_time (TAPERED)
    sample_seconds: float = 1.0  # AST_VDadapt loop
    window_samples: int = 15
    update_seconds: float = 15.0  # diff_ratio_updater >= 15
    placement_seconds: float = 2.5  # AST_VDauto_dial loop


@dataclass(frozen=True, slots=True)
class AdaptSample:
    """The inputs of one `calculate_dial_level` run (b.3)."""

    avg_ready: float
    avg_waiting: float
    avg_total: float
    calls_1m: int
    drops_1m: int
    calls_today: int
    answers_today: int
    drops_today: int
    now_hhmm: int


def adapt_step(level: float, s: AdaptSample, p: VicidialParams) -> float:
    """One dial-level update, exactly as `calculate_dial_level` (anchors.md b.3 / b.7)."""
    return drop_clamp(unclamped_step(level, s, p), s, p)


def unclamped_step(level: float, s: AdaptSample, p: VicidialParams) -> float:
    """The update before the daily drop clamp: the level's step and the one-minute brake."""
    diff = s.avg_ready - s.avg_waiting + p.dl_diff_target
    m = diff / s.avg_total if (diff and s.avg_total) else 0.0
    intensity = p.intensity / 100.0
    k = (1 + intensity) if m >= 0 else abs(intensity - 1)
    new = round(level * (1 + m * k), 3)
    new = max(min(new, p.max_level), 1.0)
    if s.calls_1m > 20 and 100 * s.drops_1m / s.calls_1m > 50:
        new /= 2
    return new


def drop_clamp(new: float, s: AdaptSample, p: VicidialParams) -> float:
    """The daily drop clamp on an unclamped update: the only place the mode and the drop
    target (`adaptive_dropped_percentage`) act."""
    drop_pct = 100 * s.drops_today / max(s.answers_today, 1)
    if s.calls_today > 50 and drop_pct > p.dropped_percentage:
        return clamp_with(new, p.mode, s.now_hhmm, p.latest_hhmm)
    return max(new, 1.0)


def clamp_with(new: float, mode: AdaptMode, now_hhmm: int, latest_hhmm: int) -> float:
    """The level after the clamp, once the day's drop percentage is over target."""
    if mode is AdaptMode.HARD_LIMIT:
        new = 1.0
    elif mode is AdaptMode.AVERAGE:
        new /= 2
    else:
        # VICIdial's HHMM integer arithmetic: 2100 - 1430 = 670 -> 0.67 (not true hours).
        left = latest_hhmm - now_hhmm
        new = 1.0 if left < 0 else new * min(1.0, left / 1000)
    return max(new, 1.0)


def clamp_is_idle(clamp_inputs: list[tuple[float, float, int]], params: VicidialParams) -> bool:
    """Whether the drop clamp of `params` changes no update of a run with these clamp inputs.

    A run whose own clamp changed nothing followed the unclamped trajectory; any mode and
    drop target whose clamp also changes nothing along it runs the very same updates, so
    the same calls (the clamp is the only place mode and target act).
    """
    for drop_pct, new, hhmm in clamp_inputs:
        if drop_pct > params.dropped_percentage and (
            clamp_with(new, params.mode, hhmm, params.latest_hhmm) != max(new, 1.0)
        ):
            return False
    return True


def calls_to_place(level: float, active_agents: int, existing_calls: int) -> int:
    """`AST_VDauto_dial.pl`: goal = round(level x active agents) minus calls already up.

    Perl's sprintf("%.0f") and Python's round() both round halves to even.
    """
    return max(0, round(level * active_agents) - existing_calls)


def _next_due(previous: float, now: float, interval: float) -> float:
    """The loop's next run: one interval on, or one interval from now after a gap."""
    due = previous + interval
    return due if due > now else now + interval


class VicidialAdaptivePacer:
    """VICIdial ADAPT_* as a pacer: sample every 1 s, adapt every 15 s, place every 2.5 s."""

    def __init__(self, params: VicidialParams | None = None) -> None:
        self.params = params or VicidialParams()
        self.name = f"vici_{self.params.mode.value.removeprefix('ADAPT_').lower()}"
        self.observed_kinds = frozenset({EventKind.DIAL_PLACED, EventKind.HUMAN_ANSWERED, EventKind.CALL_DROPPED})
        self.level = max(1.0, self.params.initial_level)
        self._samples: deque[tuple[int, int, int]] = deque(maxlen=self.params.window_samples)
        self._next_sample = -math.inf
        self._next_update = -math.inf
        self._next_placement = -math.inf
        self._day = -1
        self._calls_today = 0
        self._answers_today = 0
        self._drops_today = 0
        # Dials of the last minute as (time, how many placed then), and their total.
        self._calls_recent: deque[tuple[float, int]] = deque()
        self._calls_1m = 0
        self._drops_recent: deque[float] = deque()
        # (day's drop %, unclamped level, HHMM) at every update where a drop clamp could act:
        # what `clamp_is_idle` needs to tell whether another mode or target would have
        # run the same (the tuning search reuses such runs).
        self.clamp_inputs: list[tuple[float, float, int]] = []

    def _roll_day(self, now: float) -> None:
        day = int(now // SECONDS_PER_DAY)
        if day != self._day:
            # calculate_drops counts "today" since 00:00 server time.
            self._day = day
            self._calls_today = self._answers_today = self._drops_today = 0

    def observe(self, event: PacingEvent) -> None:
        self._roll_day(event.now)
        if event.kind is EventKind.DIAL_PLACED:
            self._calls_today += 1
            self._calls_recent.append((event.now, 1))
            self._calls_1m += 1
        elif event.kind is EventKind.HUMAN_ANSWERED:
            # DROP and XDROP statuses are human_answered='Y', so every call declared human counts.
            self._answers_today += 1
        elif event.kind is EventKind.CALL_DROPPED:
            self._drops_today += 1
            self._drops_recent.append(event.now)

    def observe_placed(self, now: float, count: int) -> None:
        """`count` DIAL_PLACED events at `now`, as `count` calls of `observe` would count them
        (a simulator placing a tick's dials hands them over at once)."""
        self._roll_day(now)
        self._calls_today += count
        self._calls_recent.append((now, count))
        self._calls_1m += count

    def _sample(self, now: float) -> AdaptSample:
        calls, drops = self._calls_recent, self._drops_recent
        while calls and calls[0][0] <= now - 60.0:
            self._calls_1m -= calls.popleft()[1]
        while drops and drops[0] <= now - 60.0:
            drops.popleft()
        count = len(self._samples) or 1
        seconds_of_day = int(now % SECONDS_PER_DAY)
        return AdaptSample(
            avg_ready=sum(s[0] for s in self._samples) / count,
            avg_waiting=sum(s[1] for s in self._samples) / count,
            avg_total=sum(s[2] for s in self._samples) / count,
            calls_1m=self._calls_1m,
            drops_1m=len(self._drops_recent),
            calls_today=self._calls_today,
            answers_today=self._answers_today,
            drops_today=self._drops_today,
            now_hhmm=(seconds_of_day // 3600) * 100 + (seconds_of_day % 3600) // 60,
        )

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        return self.decide_counts(
            snapshot.ready_agents, len(snapshot.talking_since), len(snapshot.wrapping_since),
            snapshot.paused_agents, len(snapshot.ringing_since), snapshot.calls_waiting, now,
        )  # fmt: skip

    def decide_counts(
        self, ready: int, talking: int, wrapping: int, paused: int, ringing: int, waiting: int, now: float
    ) -> int:
        """`decide` from the snapshot's counts alone (a simulator need not build its tuples):
        VICIdial reads counts of agents and calls, never their times."""
        p = self.params
        self._roll_day(now)
        if now >= self._next_sample:
            self._next_sample = _next_due(self._next_sample, now, p.sample_seconds)
            self._samples.append((ready, waiting, ready + talking + wrapping + paused))
        if now >= self._next_update:
            if self._next_update > -math.inf:
                sample = self._sample(now)
                new = unclamped_step(self.level, sample, p)
                self.level = drop_clamp(new, sample, p)
                if sample.calls_today > 50:
                    # Where a clamp could act (see `clamp_is_idle`).
                    drop_pct = 100 * sample.drops_today / max(sample.answers_today, 1)
                    self.clamp_inputs.append((drop_pct, new, sample.now_hhmm))
            self._next_update = _next_due(self._next_update, now, p.update_seconds)
        if now < self._next_placement:
            return 0
        self._next_placement = _next_due(self._next_placement, now, p.placement_seconds)
        return calls_to_place(self.level, ready + talking, ringing + waiting + talking)
