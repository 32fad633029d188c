"""The outcome oracle (rules.md 5.3.2): knows every dial's outcome and answer delay, not talk times.

It dials the leads in the same order as every other policy (common random numbers). A
dial that will not reach a person is placed at once (it only costs a line). A dial that
will reach a person is placed only when the chance that no agent is free at its known
arrival time is under an allowed risk, the risk being recalibrated every 400 answers
toward a 2% setpoint (its own outer loop, fixed so that tuning our pacer does not move
the reference). Agents' remaining talk and wrap times are as uncertain for
the oracle as for our pacer (same measured tables), so the gap between the two is the
value of predicting answers better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from dialer.pacing.predictive import AgentFreeModel, PredictiveConfig
from dialer.pacing.types import AbandonTally, EventKind, PacingEvent, PacingSnapshot


@dataclass(frozen=True)
class OracleConfig:
    """The oracle's budget knobs (fixed: tuning our pacer does not move the reference)."""

    setpoint: float = 0.02
    initial_risk: float = 0.03
    min_risk: float = 0.001
    max_risk: float = 0.5
    calibrate_every_answers: int = 400
    calibration_gain: float = 0.5
    guard_rate: float = 0.026
    release_rate: float = 0.021
    guard_min_answers: int = 300
    deadline_slack_seconds: float = 1.0


class _RiskCalibration:
    """The oracle's outer loop: recalibrates its allowed risk every few hundred answers toward a
    2% setpoint, and falls back to progressive near the limit (kept as first benchmarked)."""

    def __init__(self, config: OracleConfig) -> None:
        self.config = config
        self.risk = config.initial_risk
        self.fallback = False
        self._answers = 0
        self._abandons = 0

    def observe(self, event: PacingEvent) -> None:
        if event.kind is EventKind.HUMAN_ANSWERED:
            self._answers += 1
        elif event.kind is EventKind.CALL_ABANDONED:
            self._abandons += 1

    def _trailing_rate(self, tally: AbandonTally) -> float:
        return tally.abandoned / max(tally.live_answers, self.config.guard_min_answers)

    def update(self, tally: AbandonTally) -> None:
        c = self.config
        rate = self._trailing_rate(tally)
        if self.fallback and rate < c.release_rate:
            self.fallback = False
        elif not self.fallback and rate >= c.guard_rate:
            self.fallback = True
        if self._answers >= c.calibrate_every_answers:
            # Spend less when the 30-day window already used more than its share.
            target = c.setpoint
            if rate > c.setpoint:
                target = max(0.25 * c.setpoint, c.setpoint - 2.0 * (rate - c.setpoint))
            expected = self._answers * target
            # +1 on both sides: a window with zero abandons raises risk gently, not to infinity.
            ratio = (expected + 1.0) / (self._abandons + 1.0)
            self.risk *= ratio**c.calibration_gain
            self.risk = min(max(self.risk, c.min_risk), c.max_risk)
            self._answers = 0
            self._abandons = 0


class OutcomeOraclePacer:
    """Not deployable: it peeks at the simulator's pre-drawn outcomes."""

    name = "oracle"

    def __init__(self, config: OracleConfig | None = None) -> None:
        self.config = config or OracleConfig()
        # Same measured tables as our pacer (quartiles of the answer delay).
        self.model = AgentFreeModel(PredictiveConfig(deadline_slack_seconds=self.config.deadline_slack_seconds))
        self.budget = _RiskCalibration(self.config)
        self._peek: Callable[[int], tuple[bool, float] | None] = lambda ahead: None
        self._arrivals: list[float] = []  # known arrival times of people dialed and not yet arrived

    def bind_peek(self, peek: Callable[[int], tuple[bool, float] | None]) -> None:
        self._peek = peek

    def observe(self, event: PacingEvent) -> None:
        self.model.observe(event)
        self.budget.observe(event)
        if event.kind is EventKind.HUMAN_ANSWERED and self._arrivals:
            self._arrivals.pop(0)

    def _free_agents(self, snapshot: PacingSnapshot, now: float, delay: float) -> tuple[float, float]:
        """Mean and variance of agents free `delay` seconds from now (before new arrivals)."""
        model = self.model
        j = min(range(len(model.horizons)), key=lambda i: abs(model.horizons[i] - delay))
        q_talk, q_wrap = model.q_talk[j], model.q_wrap[j]
        n_talk, n_wrap = len(q_talk) - 1, len(q_wrap) - 1
        mean = float(snapshot.ready_agents - snapshot.calls_waiting)
        var = 0.0
        for since in snapshot.talking_since:
            e = int(now - since)
            q = q_talk[e if e < n_talk else n_talk]
            mean += q
            var += q * (1.0 - q)
        for since in snapshot.wrapping_since:
            e = int(now - since)
            q = q_wrap[e if e < n_wrap else n_wrap]
            mean += q
            var += q * (1.0 - q)
        return mean, var

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        self.budget.update(snapshot.abandon_tally)
        modelled = self.model.ready and not self.budget.fallback
        if modelled:
            self.model.maybe_rebuild()
        arrivals = sorted(self._arrivals)
        uncovered = snapshot.ready_agents - snapshot.calls_waiting - len(arrivals)
        n = 0
        while n < snapshot.free_lines:
            ahead = self._peek(n)
            if ahead is None:
                break
            person, delay = ahead
            if person:
                arrive = now + delay
                if uncovered > 0:
                    uncovered -= 1  # an idle agent is certainly there
                elif not modelled:
                    break
                else:
                    demand = 1 + sum(1 for t in arrivals if t <= arrive)
                    mean, var = self._free_agents(snapshot, now, delay + self.config.deadline_slack_seconds)
                    sd = math.sqrt(var) if var > 1e-12 else 1e-6
                    p_short = 0.5 * (1.0 + math.erf((demand - 0.5 - mean) / sd / math.sqrt(2.0)))
                    if p_short > self.budget.risk:
                        break
                arrivals.append(arrive)
                self._arrivals.append(arrive)
            n += 1
        return n
