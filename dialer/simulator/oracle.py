"""The outcome oracle: knows every dial's outcome and answer delay, not talk times.

What kind of reference it is. It is not a bound on every policy: it is *our pacer's rule
with perfect knowledge of the dials*. It dials the leads in the same order as every other
policy (common random numbers). A dial that will not reach a person is placed at once (it
only costs a line). A dial that will reach a person is placed only when its risk, the
chance that no agent is free when it arrives, is under an allowance. That risk is computed
from the same measured talk and wrap-up tables as our pacer (agents' remaining times are
as uncertain for the oracle as for us), with the people already dialed counted exactly
(who arrives, and when) instead of as a Poisson guess. Its 30-day budget is our pacer's:
the same setpoint and current target (`AbandonBudget`), the allowance steered every 30 s
so that its predicted abandon rate (the mean risk of the people it dials, corrected by a
slowly learned bias) meets the target, and the same guard, with steering frozen while
cautious so that nothing winds up (the former oracle recalibrated from counted abandons
every 400 answers, kept raising its allowance while the guard held it progressive, and
overshot on release: days alternated between ~0% and 7-12% at low live-answer rates).

The occupancy gap between our pacer and this oracle is therefore the value of knowing
which dials become people and when, under the same rule for the abandon budget. The
fluid bound (`metrics.clairvoyant_bound`) is the bound on any policy: agents busy every
available minute, capped by the supply of people that lines and calls per second allow.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right, insort
from collections.abc import Callable

import numpy as np

from dialer.pacing.predictive import (
    AbandonBudget,
    AgentFreeModel,
    IntArray,
    PredictiveConfig,
    poisson_binomial,
)
from dialer.pacing.types import EventKind, PacingEvent, PacingSnapshot

# Up to this many busy agents, plain Python finds their table columns faster than numpy.
_PYTHON_MAX = 24


class OutcomeOraclePacer:
    """Not deployable: it peeks at the simulator's pre-drawn outcomes."""

    name = "oracle"
    # What its model, budget and bias learn from (DIAL_PLACED, CALL_BRIDGED and CALL_DROPPED
    # change nothing it keeps): the simulator sends it only these.
    observed_kinds = frozenset(
        {EventKind.HUMAN_ANSWERED, EventKind.DIAL_ENDED, EventKind.TALK_ENDED, EventKind.WRAP_ENDED,
         EventKind.CALL_ABANDONED}
    )  # fmt: skip

    def __init__(self, config: PredictiveConfig | None = None) -> None:
        self.config = config or PredictiveConfig()
        # Quartiles of the answer delay: the horizons at which agents' readiness is known.
        self.model = AgentFreeModel(self.config)
        self.budget = AbandonBudget(self.config)
        self.allowance = self.config.initial_allowance
        self.bias = self.config.bias_prior_ratio
        self._peek: Callable[[int], tuple[bool, float] | None] = lambda ahead: None
        self._arrivals: list[float] = []  # known arrival times of people dialed, not yet arrived
        self._risk_sum = 0.0
        self._risk_people = 0.0
        self._predicted = 0.0
        self._observed = 0.0
        self._next_steer = -math.inf
        self._columns_of = 0  # the tables the column kinds below are for
        self._edges_of = -1  # the tables the horizons' edges below are for
        self._edges: list[float] = []
        self._busy: np.ndarray[tuple[int, ...], np.dtype[np.float64]] = np.zeros((1, 1))
        self._kinds: IntArray = np.zeros(1, dtype=np.int64)

    def bind_peek(self, peek: Callable[[int], tuple[bool, float] | None]) -> None:
        self._peek = peek

    def observe(self, event: PacingEvent) -> None:
        self.model.observe(event)
        kind = event.kind
        if kind is EventKind.HUMAN_ANSWERED:
            self.budget.observe(event)  # the budget counts answers only
            if self._arrivals:  # the earliest known arrival has arrived
                self._arrivals.pop(0)
            decay = 1.0 - 1.0 / self.config.bias_memory_answers
            self._observed *= decay
            self._predicted *= decay
        elif kind is EventKind.CALL_ABANDONED:
            self._observed += 1.0

    def observe_dial_ended(self, seconds: float) -> None:
        """`observe` of a DIAL_ENDED event, which only the model uses (its seconds)."""
        self.model.observe_dial_ended(seconds)

    @property
    def predicted_rate(self) -> float:
        return self._risk_sum / self._risk_people if self._risk_people else 0.0

    def _steer(self, now: float, target: float) -> None:
        """Our pacer's steering: the predicted rate times the bias toward the target."""
        c = self.config
        if now < self._next_steer or self.budget.fallback:
            return
        self._next_steer = now + c.steer_every_seconds
        prior = c.bias_prior_abandons
        self.bias = (self._observed + c.bias_prior_ratio * prior) / (self._predicted + prior)
        if self._risk_people < 20.0:
            return
        expected = max(self.bias * self.predicted_rate, 1e-6)
        self.allowance *= (target / expected) ** c.steer_gain
        self.allowance = min(max(self.allowance, c.min_allowance), c.max_allowance)

    def supply_cdfs(self, snapshot: PacingSnapshot, now: float) -> list[list[float]]:
        """Per horizon of the tables: P(at most s busy agents are free by then), s = 0, 1, ...
        (the exact Poisson-binomial count from the measured tables).

        With more than `_PYTHON_MAX` busy agents, agents whose chance is exactly 0 at every
        horizon (a call or wrap-up that cannot end in time: most calls, with wrap-ups of 20 s
        or more) leave the count unchanged, and agents whose chance is exactly 1 only shift
        it: only the others enter the transform (at 100 agents, a tenth of them), for the
        same law up to rounding.
        """
        model = self.model
        talk_width = model.q_talk.shape[1]
        talk_last, wrap_last = talk_width - 1, model.q_wrap.shape[1] - 1
        talkers = len(snapshot.talking_since)
        if self._columns_of != model.built:
            self._columns_of = model.built
            busy = np.concatenate([model.q_talk, model.q_wrap], axis=1)
            # Per column: 0 counted, 1 surely free by every horizon, 2 never (exactly).
            kinds = np.where((busy >= 1.0).all(axis=0), 1, np.where((busy <= 0.0).all(axis=0), 2, 0))
            self._busy = busy
            self._kinds = kinds.astype(np.int64)
        if talkers + len(snapshot.wrapping_since) <= _PYTHON_MAX:
            # Small teams: every agent in the transform, as before (cheap at this size). The
            # rounding of the shorter transform can break an exact tie between a risk and
            # the allowance the other way: measured once in 2 days of n20_p5_short, whose
            # early tables (few samples) give risks like 3/50 = the initial allowance.
            # Columns of the joined table (talking, then wrap-up ones after the talking
            # table's): the same values in the same order as joining the two tables' columns.
            # Whole seconds clipped to [0, last]: min(max(age, 0), last) without the two
            # builtin calls per agent (last >= 0).
            picked = [
                (age if age < talk_last else talk_last) if age > 0 else 0
                for age in [int(now - since) for since in snapshot.talking_since]
            ]
            picked += [
                talk_width + ((age if age < wrap_last else wrap_last) if age > 0 else 0)
                for age in [int(now - since) for since in snapshot.wrapping_since]
            ]
            q = self._busy[:, picked]
            cdf = poisson_binomial(q).cumsum(axis=1)
            small: list[list[float]] = np.minimum(cdf, 1.0, out=cdf).tolist()
            return small
        # The same whole seconds (truncated toward zero, then clipped), with numpy.
        columns = (now - np.array(snapshot.talking_since + snapshot.wrapping_since, dtype=np.float64)).astype(np.int64)
        np.maximum(columns, 0, out=columns)
        np.minimum(columns[:talkers], talk_last, out=columns[:talkers])
        wrap = columns[talkers:]
        np.minimum(wrap, wrap_last, out=wrap)
        wrap += talk_width
        kinds = self._kinds[columns]
        certain = int(np.count_nonzero(kinds == 1))
        pmf = poisson_binomial(self._busy[:, columns[kinds == 0]])
        if certain:
            pmf = np.concatenate([np.zeros((pmf.shape[0], certain)), pmf], axis=1)
        cdfs: list[list[float]] = np.minimum(np.cumsum(pmf, axis=1), 1.0).tolist()
        return cdfs

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        c = self.config
        target = self.budget.target(snapshot.abandon_tally, now)
        modelled = self.model.ready
        if modelled:
            self.model.maybe_rebuild()
            self._steer(now, target)
        allowance = c.min_allowance if self.budget.fallback else self.allowance
        # Known arrivals, kept sorted; a person dialed now joins them at once (it arrives
        # after this decision, so it counts for the next people of this decision too).
        arrivals = self._arrivals
        idle = snapshot.ready_agents - snapshot.calls_waiting
        slack = c.deadline_slack_seconds
        if self._edges_of != self.model.built:
            # Arrivals map to the table horizon nearest their delay plus the slack.
            self._edges_of = self.model.built
            reach = [h + slack for h in self.model.horizons]
            self._edges = [0.5 * (a + b) for a, b in itertools.pairwise(reach)]
        edges = self._edges
        cdfs: list[list[float]] = []

        def shortage(at: float, demand: int) -> float:
            """P(fewer than `demand` busy agents free by `at` + slack)."""
            if demand <= 0:
                return 0.0
            cdf = cdfs[bisect_right(edges, at - now + slack)]
            return cdf[demand - 1] if demand - 1 < len(cdf) else 1.0

        n = 0
        while n < snapshot.free_lines:
            ahead = self._peek(n)
            if ahead is None:
                break
            person, delay = ahead
            if person:
                arrive = now + delay
                risk = 0.0
                if idle - len(arrivals) <= 0:  # no idle agent certainly left for it
                    if not modelled:
                        break
                    if not cdfs:
                        cdfs = self.supply_cdfs(snapshot, now)
                    # People known to arrive first take agents first (FIFO); this one, in
                    # turn, takes an agent from every known person arriving after it: it is
                    # charged the worst shortage from its own arrival on.
                    rank = bisect_right(arrivals, arrive)
                    risk = shortage(arrive, rank + 1 - idle)
                    for later in range(rank, len(arrivals)):
                        if risk > allowance:
                            break
                        risk = max(risk, shortage(arrivals[later], later + 2 - idle))
                    if risk > allowance:
                        break
                insort(arrivals, arrive)
                if modelled and not self.budget.fallback:
                    keep = 1.0 - 1.0 / c.rate_memory_lines
                    self._risk_sum = self._risk_sum * keep + risk
                    self._risk_people = self._risk_people * keep + 1.0
                self._predicted += risk
            n += 1
        return n
