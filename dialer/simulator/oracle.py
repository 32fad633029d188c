"""The outcome oracle (rules.md 5.3.2): knows every dial's outcome and answer delay, not talk times.

It dials the leads in the same order as every other policy (common random numbers). A
dial that will not reach a person is placed at once (it only costs a line). A dial that
will reach a person is placed only when the chance that no agent is free at its known
arrival time is under an allowed risk, the risk being calibrated by the same 30-day
abandon budget as our pacer. Agents' remaining talk and wrap times are as uncertain for
the oracle as for our pacer (same measured tables), so the gap between the two is the
value of predicting answers better.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dialer.pacing.predictive import AbandonBudget, AgentFreeModel, PredictiveConfig
from dialer.pacing.types import EventKind, PacingEvent, PacingSnapshot


class OutcomeOraclePacer:
    """Not deployable: it peeks at the simulator's pre-drawn outcomes."""

    name = "oracle"

    def __init__(self, config: PredictiveConfig | None = None) -> None:
        self.config = config or PredictiveConfig(initial_risk=0.03, min_risk=0.001)
        self.model = AgentFreeModel(self.config)
        self.budget = AbandonBudget(self.config)
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
