"""FROZEN REFERENCE: the predictive pacer as it was before the speed work (commit aa933b2).

The equivalence tests run it against the current code: same decisions, same results.
Do not edit, except to keep it importable.

Our predictive pacer: exact counts of free agents and answered calls over the ring horizon.

Inner loop (every decision). For each quantile of the measured dial-to-person delay (the
moments a line dialed now may turn into a person needing an agent), it computes:
- the number of agents free by then: ready agents minus calls already waiting, plus a
  Poisson-binomial over busy agents, each with its own chance of being ready again given
  the time it has already spent talking or wrapping up (conditional survival of the
  measured talk and wrap-up samples, so bimodal and heavy-tailed talk times are handled);
- the number of people arriving by then from lines already ringing (each line's chance
  given how long it has rung) and from the other new lines (answer rate x share of the
  delay distribution), as a Poisson count.
A new line's *marginal risk* is the chance that, once a person, it finds no agent: the
increase in expected abandons it brings per expected person. The pacer dials the largest
number of lines whose last line's marginal risk stays under an allowance (Lagrangian:
the cheapest abandons per extra answer are bought first), never fewer than progressive.

Outer loop (the 30-day budget). 47 CFR 64.1200(a)(7) and 16 CFR 310.4(b)(4) judge
abandoned / live-answered calls per 30 days; abandons are rare (a few per hundred
answers), so the allowance is not chased from a per-minute rate. Instead:
- a *setpoint* under 3% leaves room for the window's sampling noise, which shrinks with
  the number of answers a 30-day window holds (measured: answers per day x 30);
- the *current target* spends the window's unspent budget (or repays an overspend) over
  the answers the window still has to come;
- the model's own predicted abandon rate of the lines it dials is known at once (it is a
  sum of probabilities, not a count of rare events), so the allowance is steered to make
  the predicted rate, times a slowly learned bias factor (observed / predicted abandons,
  with a prior of 1), meet the current target;
- if the trailing 30-day rate still nears the limit, the smallest allowance until it is
  back down (still predictive, at almost no risk: more answers than progressive).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from dialer.pacing.simple import progressive_lines
from dialer.pacing.types import (
    REGULATORY_ABANDON_LIMIT,
    AbandonTally,
    EventKind,
    PacingEvent,
    PacingSnapshot,
)

FloatArray = np.ndarray[tuple[int, ...], np.dtype[np.float64]]
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class PredictiveConfig:
    """Knobs of the predictive pacer; the defaults are what the benchmark runs."""

    abandon_limit: float = REGULATORY_ABANDON_LIMIT
    # Highest setpoint for the 30-day rate; lower when windows hold few answers.
    max_setpoint: float = 0.025
    # Standard deviations of a window's binomial noise kept between setpoint and limit
    # (more than the 2.33 of a 1% tail: abandons come in clusters, not independently).
    noise_margin_sd: float = 3.0
    # The current target stays within these multiples of the setpoint.
    min_target_share: float = 0.25
    max_target_share: float = 1.4
    initial_allowance: float = 0.06
    min_allowance: float = 0.002
    max_allowance: float = 0.6
    steer_every_seconds: float = 30.0
    steer_gain: float = 0.3
    # The bias factor's prior: `bias_prior_ratio` observed per predicted abandon, worth
    # `bias_prior_abandons` predicted abandons. The model ignores people from lines dialed
    # after a line that reach an agent before it, so it under-predicts: measured bias at
    # 20 agents (30 days, seed 7) 1.2-1.9 at 5-12% live, 0.9-1.1 at 25%. Starting at 1.5
    # keeps the first days under the setpoint instead of over it (a prior of 1 worth 15
    # abandons: trailing rate 2.7-3.05% on days 1-13 of n20_p5_short, then 3 days cautious).
    bias_prior_abandons: float = 8.0
    bias_prior_ratio: float = 1.5
    # Decay per predicted person of the bias factor's and predicted rate's memory.
    bias_memory_answers: float = 4000.0
    rate_memory_lines: float = 3000.0
    # Cautious (the smallest allowance) when the trailing 30-day rate reaches
    # guard_share x limit (denominator at least guard_min_answers), until it is back
    # guard_release_gap under it. Still predictive: far more answers than progressive at
    # almost no risk, so the window's rate falls faster.
    guard_share: float = 0.9
    guard_release_gap: float = 0.003
    guard_min_answers: int = 300
    warmup_answers: int = 30
    warmup_handled: int = 20
    # Seconds a person can wait after AMD before the 2-second deadline passes.
    deadline_slack_seconds: float = 1.0
    horizon_quantiles: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    rebuild_every: int = 100
    sample_size: int = 400
    dial_sample_size: int = 3000
    max_lines_per_agent: float = 12.0
    # Busy agents whose chance of being free is below this are left out of the count.
    negligible: float = 1e-4
    # Count the people that lines dialed in the coming seconds (at the recent dial rate,
    # averaged over dial_rate_seconds) bring before a horizon: they compete too. Off:
    # measured (30 days, seed 7) it brought the bias factor nearer 1 but no occupancy at
    # 20-50 agents, and cost 4-6 points at 3-5 agents (0.551 -> 0.488, 0.606 -> 0.569).
    count_future_dials: bool = False
    dial_rate_seconds: float = 60.0


class _Samples:
    """A fixed-size reservoir of the most recent values (oldest overwritten)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: list[float] = []
        self._next = 0

    def add(self, value: float) -> None:
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            self.values[self._next] = value
            self._next = (self._next + 1) % self.size

    def __len__(self) -> int:
        return len(self.values)


class AgentFreeModel:
    """Measured answer, ring, talk and wrap distributions, turned into lookup tables.

    `q_talk[e]`: probability an agent `e` seconds into a call is ready again within the
    horizon (remaining talk plus a wrap-up). `q_wrap[e]`: same for an agent `e` seconds
    into wrap-up. `p_ringing[r]`: probability a line ringing for `r` seconds still becomes a
    call that needs an agent.
    """

    def __init__(self, config: PredictiveConfig, quantiles: tuple[float, ...] = (0.25, 0.5, 0.75)) -> None:
        self.config = config
        self.quantiles = quantiles
        self.talk = _Samples(config.sample_size)
        self.wrap = _Samples(config.sample_size)
        self.human_delay = _Samples(config.sample_size)
        self.dials = _Samples(config.dial_sample_size)  # +duration for people, -duration otherwise
        self.dials_seen = 0.0
        self.humans_seen = 0.0
        self.human_answers = 0
        self.horizons: list[float] = []
        self.arrival_share: list[float] = []
        self.future_weight: list[float] = []
        self.q_talk: list[list[float]] = []
        self.q_wrap: list[list[float]] = []
        self.p_ringing: list[list[float]] = []
        self._since_rebuild = 0

    # Decayed counts: the answer rate drifts over the day; about the last 2000 dials weigh.
    _DECAY = 1.0 - 1.0 / 2000.0

    @property
    def p_human(self) -> float:
        # A weak prior (10% live) until enough dials are seen.
        return (self.humans_seen + 2.0) / (self.dials_seen + 20.0)

    def observe(self, event: PacingEvent) -> None:
        kind = event.kind
        if kind is EventKind.HUMAN_ANSWERED:
            self.dials_seen = self.dials_seen * self._DECAY + 1.0
            self.humans_seen = self.humans_seen * self._DECAY + 1.0
            self.human_answers += 1
            self.human_delay.add(event.seconds)
            self.dials.add(max(event.seconds, 1e-3))
        elif kind is EventKind.DIAL_ENDED:
            self.dials_seen = self.dials_seen * self._DECAY + 1.0
            self.humans_seen *= self._DECAY
            self.dials.add(-max(event.seconds, 1e-3))
        elif kind is EventKind.TALK_ENDED:
            self.talk.add(event.seconds)
            self._since_rebuild += 1
        elif kind is EventKind.WRAP_ENDED:
            self.wrap.add(event.seconds)

    @property
    def ready(self) -> bool:
        c = self.config
        return (
            self.human_answers >= c.warmup_answers
            and len(self.talk) >= c.warmup_handled
            and len(self.wrap) >= c.warmup_handled
        )

    def maybe_rebuild(self) -> None:
        if not self.q_talk or self._since_rebuild >= self.config.rebuild_every:
            self.rebuild()

    def rebuild(self) -> None:
        """Recompute the lookup tables at the arrival horizons (quantiles of the answer delay)."""
        self._since_rebuild = 0
        delays = sorted(self.human_delay.values) or [10.0]
        n_delay = len(delays)
        slack = self.config.deadline_slack_seconds
        self.horizons = [delays[min(n_delay - 1, int(n_delay * q))] for q in self.quantiles]
        # P(a new line becomes a person arriving by the horizon | it becomes a person).
        self.arrival_share = [bisect_right(delays, h) / n_delay for h in self.horizons]
        # E[(h - delay)^+]: person-seconds by h of a steady stream of one dial a second.
        self.future_weight = [sum(h - d for d in delays if d < h) / n_delay for h in self.horizons]
        wraps = sorted(self.wrap.values)
        n_wrap = len(wraps) or 1

        def wrap_cdf(x: float) -> float:
            return bisect_right(wraps, x) / n_wrap

        talks = sorted(self.talk.values)
        n_talk = len(talks)
        size = int(max((abs(v) for v in self.dials.values), default=0.0)) + 2
        ends = [0] * size
        human_ends = [0] * size
        for v in self.dials.values:
            b = int(abs(v))
            ends[b] += 1
            if v > 0:
                human_ends[b] += 1
        alive = [0] * (size + 1)
        humans_cum = [0] * (size + 1)  # humans resolving at second < b
        for b in range(size - 1, -1, -1):
            alive[b] = alive[b + 1] + ends[b]
        for b in range(size):
            humans_cum[b + 1] = humans_cum[b] + human_ends[b]

        self.q_talk, self.q_wrap, self.p_ringing = [], [], []
        for arrival in self.horizons:
            h = arrival + slack
            q_talk: list[float] = []
            last = 1.0
            for e in range(int(talks[-1]) + 2 if talks else 1):
                lo = bisect_right(talks, e)
                remaining = n_talk - lo
                if remaining:
                    hi = bisect_right(talks, e + h)
                    last = sum(wrap_cdf(h - (t - e)) for t in talks[lo:hi]) / remaining
                q_talk.append(last)
            self.q_talk.append(q_talk or [1.0])
            q_wrap: list[float] = []
            for e in range(int(wraps[-1]) + 2 if wraps else 1):
                left = 1.0 - wrap_cdf(e)
                q_wrap.append(1.0 if left <= 0.0 else (wrap_cdf(e + h) - wrap_cdf(e)) / left)
            self.q_wrap.append(q_wrap or [1.0])
            # P(person arriving within `arrival` more seconds | unresolved after r seconds).
            p_ring = [0.0] * size
            for r in range(size):
                upto = min(size, r + 1 + int(arrival))
                p_ring[r] = (humans_cum[upto] - humans_cum[r]) / alive[r] if alive[r] else 0.0
            self.p_ringing.append(p_ring)


_LOG_FACTORIAL = np.array([math.lgamma(i + 1.0) for i in range(4096)])


def poisson_binomial(probabilities: FloatArray) -> FloatArray:
    """Row-wise distribution of a count of independent successes (exact, by convolution).

    `probabilities` has shape (rows, m); the result (rows, m + 1) holds P(count = c).
    """
    rows, m = probabilities.shape
    pmf = np.zeros((rows, m + 1))
    pmf[:, 0] = 1.0
    for i in range(m):
        p = probabilities[:, i : i + 1]
        pmf[:, 1 : i + 2] = pmf[:, 1 : i + 2] * (1.0 - p) + pmf[:, : i + 1] * p
        pmf[:, 0] *= 1.0 - p[:, 0]
    return pmf


def poisson_at_least(mean: FloatArray, size: int) -> FloatArray:
    """P(N >= c) for N ~ Poisson(mean), c = 0 .. size - 1, on a new last axis."""
    c = np.arange(size)
    mu = np.maximum(mean, 1e-300)[..., None]
    pmf = np.exp(c * np.log(mu) - mu - _LOG_FACTORIAL[:size])
    below = np.cumsum(pmf, axis=-1) - pmf
    result: FloatArray = np.clip(1.0 - below, 0.0, 1.0)
    return result


def marginal_risks(
    free_now: int,
    free_pmf: FloatArray,
    ringing_people: FloatArray,
    new_person_share: FloatArray,
    lines: int,
) -> FloatArray:
    """Chance that the n-th new line (n = 1 .. lines), once a person, finds no agent.

    Per horizon k (a quantile of the new line's dial-to-person delay, equally weighted):
    `free_pmf[k, s]` is the distribution of busy agents ready again by then, `free_now`
    the agents certainly free (ready minus calls waiting, may be negative),
    `ringing_people[k]` the expected people from lines already ringing arriving by then,
    `new_person_share[k]` the chance that another new line has become a person by then.
    People arriving before this line (a Poisson count) take agents first; the line finds
    none when they are at least as many as the agents free. Taking an agent a later person
    would have had costs the same, so each horizon's shortage is charged to every line
    arriving before it.
    """
    supply_size = free_pmf.shape[1]
    before = ringing_people[None, :] + np.arange(lines)[:, None] * new_person_share[None, :]
    need = np.clip(free_now + np.arange(supply_size), 0, None)
    tails = poisson_at_least(before, int(need.max()) + 1)  # (lines, horizons, size)
    per_horizon = (tails[:, :, need] * free_pmf[None, :, :]).sum(axis=2)
    # A person who takes an agent at k leaves a later arrival without one: the line is
    # charged the worst shortage from its own arrival on (horizons are in time order).
    per_horizon = np.maximum.accumulate(per_horizon[:, ::-1], axis=1)[:, ::-1]
    risks: FloatArray = per_horizon.mean(axis=1)
    return risks


class AbandonBudget:
    """The 30-day budget: a setpoint sized to a window's noise, and the target it implies now."""

    def __init__(self, config: PredictiveConfig) -> None:
        self.config = config
        self.fallback = False
        self._day = -1
        self._days_done = 0
        self._answers_done = 0
        self._answers_today = 0

    def observe(self, event: PacingEvent) -> None:
        if event.kind is EventKind.HUMAN_ANSWERED:
            self._roll(event.now)
            self._answers_today += 1

    def _roll(self, now: float) -> None:
        day = int(now // SECONDS_PER_DAY)
        if day != self._day:
            if self._day >= 0:
                self._days_done += 1
                self._answers_done += self._answers_today
                self._answers_today = 0
            self._day = day

    @property
    def window_answers(self) -> float:
        """Live answers a 30-day window holds: from completed days, else today's so far."""
        per_day = self._answers_done / self._days_done if self._days_done else float(self._answers_today)
        return max(per_day * 30.0, 100.0)

    @property
    def setpoint(self) -> float:
        """The 30-day rate to aim at: `noise_margin_sd` binomial sds under the limit."""
        c = self.config
        limit = c.abandon_limit
        sd = math.sqrt(limit * (1.0 - limit) / self.window_answers)
        return min(c.max_setpoint, max(0.3 * limit, limit - c.noise_margin_sd * sd))

    @property
    def guard_level(self) -> float:
        """The trailing rate that turns the pacer cautious: `guard_share` x limit, or halfway
        from the setpoint to the limit when the setpoint is that close to it."""
        c = self.config
        return max(c.guard_share * c.abandon_limit, 0.5 * (self.setpoint + c.abandon_limit))

    def target(self, tally: AbandonTally, now: float) -> float:
        """The abandon rate to spend now, and the guard's state, from the trailing tally."""
        c = self.config
        self._roll(now)
        setpoint = self.setpoint
        # Early in a window few answers are in: judge against half a window's answers so
        # that a handful of early abandons does not stop predictive dialing.
        guarded = tally.abandoned / max(tally.live_answers, c.guard_min_answers, 0.5 * self.window_answers)
        guard = self.guard_level
        if self.fallback and guarded < guard - c.guard_release_gap:
            self.fallback = False
        elif not self.fallback and guarded >= guard:
            self.fallback = True
        window = self.window_answers
        spare = setpoint * tally.live_answers - tally.abandoned
        to_come = max(window - tally.live_answers, window / 3.0)
        target = setpoint + spare / to_come
        return min(max(target, c.min_target_share * setpoint), c.max_target_share * setpoint)


class PredictivePacer:
    """Model-based predictive pacer with a 30-day abandon budget and a progressive guard."""

    name = "predictive"

    def __init__(self, config: PredictiveConfig | None = None) -> None:
        self.config = config or PredictiveConfig()
        self.model = AgentFreeModel(self.config, self.config.horizon_quantiles)
        self.budget = AbandonBudget(self.config)
        self.allowance = self.config.initial_allowance
        self.bias = self.config.bias_prior_ratio
        self._tables_of: object = None
        self._q_talk = np.zeros((1, 1))
        self._q_wrap = np.zeros((1, 1))
        self._p_ring = np.zeros((1, 1))
        self._share = np.zeros(1)
        self._future = np.zeros(1)
        self.dial_rate = 0.0
        self._last_decision = math.nan
        # Decayed sums: predicted risk of dialed lines, abandons predicted and observed.
        self._risk_sum = 0.0
        self._risk_lines = 0.0
        self._predicted = 0.0
        self._observed = 0.0
        self._next_steer = -math.inf
        self.target = self.config.max_setpoint

    def observe(self, event: PacingEvent) -> None:
        self.model.observe(event)
        self.budget.observe(event)
        if event.kind is EventKind.CALL_ABANDONED:
            self._observed += 1.0
        elif event.kind is EventKind.HUMAN_ANSWERED:
            decay = 1.0 - 1.0 / self.config.bias_memory_answers
            self._observed *= decay
            self._predicted *= decay

    @property
    def mode(self) -> str:
        """'warmup', 'fallback' (cautious) or 'predictive': which rule the last decision used."""
        if not self.model.ready:
            return "warmup"
        return "fallback" if self.budget.fallback else "predictive"

    @property
    def predicted_rate(self) -> float:
        """Mean predicted risk (abandons per person) of the lines dialed lately."""
        return self._risk_sum / self._risk_lines if self._risk_lines else 0.0

    def _tables(self) -> None:
        model = self.model
        model.maybe_rebuild()
        if self._tables_of is not model.q_talk:
            self._tables_of = model.q_talk
            self._q_talk = np.array(model.q_talk)
            self._q_wrap = np.array(model.q_wrap)
            self._p_ring = np.array(model.p_ringing)
            self._share = np.array(model.arrival_share)
            self._future = np.array(model.future_weight)

    def situation(self, snapshot: PacingSnapshot, now: float) -> tuple[int, FloatArray, FloatArray, FloatArray]:
        """(agents certainly free, pmf of busy agents free by each horizon, expected people
        from ringing lines by each horizon, chance a new line is a person by each horizon)."""
        self._tables()
        c = self.config
        q_talk, q_wrap, p_ring = self._q_talk, self._q_wrap, self._p_ring
        parts = []
        if snapshot.talking_since:
            since = np.fromiter(snapshot.talking_since, float, len(snapshot.talking_since))
            parts.append(q_talk[:, np.minimum((now - since).astype(np.int64), q_talk.shape[1] - 1)])
        if snapshot.wrapping_since:
            since = np.fromiter(snapshot.wrapping_since, float, len(snapshot.wrapping_since))
            parts.append(q_wrap[:, np.minimum((now - since).astype(np.int64), q_wrap.shape[1] - 1)])
        free_now = snapshot.ready_agents - snapshot.calls_waiting
        if parts:
            q = np.concatenate(parts, axis=1)
            certain = (q >= 1.0 - c.negligible).all(axis=0)
            free_now += int(certain.sum())
            q = q[:, ~certain & (q > c.negligible).any(axis=0)]
        else:
            q = np.zeros((q_talk.shape[0], 0))
        if snapshot.ringing_since:
            since = np.fromiter(snapshot.ringing_since, float, len(snapshot.ringing_since))
            ages = np.minimum((now - since).astype(np.int64), p_ring.shape[1] - 1)
            ringing = p_ring[:, ages].sum(axis=1)
        else:
            ringing = np.zeros(p_ring.shape[0])
        if c.count_future_dials:
            ringing = ringing + self.dial_rate * self.model.p_human * self._future
        return free_now, poisson_binomial(q), ringing, self.model.p_human * self._share

    def _steer(self, now: float, target: float) -> None:
        """Move the allowance so that the predicted rate, corrected by the bias, meets the target."""
        c = self.config
        if now < self._next_steer:
            return
        if self.budget.fallback:
            # Cautious mode dials at the smallest allowance: steering the normal one on
            # those near-riskless lines would wind it up to the maximum (measured: the
            # release then overshot, 3.4% abandons that day, n20_p5_short).
            return
        self._next_steer = now + c.steer_every_seconds
        prior = c.bias_prior_abandons
        self.bias = (self._observed + c.bias_prior_ratio * prior) / (self._predicted + prior)
        if self._risk_lines < 20.0:
            return
        expected = max(self.bias * self.predicted_rate, 1e-6)
        self.allowance *= (target / expected) ** c.steer_gain
        self.allowance = min(max(self.allowance, c.min_allowance), c.max_allowance)

    def _track_dial_rate(self, lines: int, now: float) -> None:
        elapsed = now - self._last_decision
        self._last_decision = now
        if not 0.0 < elapsed < 60.0:
            return
        share = min(1.0, elapsed / self.config.dial_rate_seconds)
        self.dial_rate += share * (lines / elapsed - self.dial_rate)

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        c = self.config
        target = self.budget.target(snapshot.abandon_tally, now)
        self.target = target
        floor = min(progressive_lines(snapshot), snapshot.free_lines)
        if not self.model.ready:
            return floor
        self._steer(now, target)
        allowance = c.min_allowance if self.budget.fallback else self.allowance
        cap = min(snapshot.free_lines, int(c.max_lines_per_agent * max(1, snapshot.logged_in_agents)))
        if cap <= 0:
            return 0
        free_now, free_pmf, ringing, share = self.situation(snapshot, now)
        lines = min(cap, max(8, 2 * floor))
        while True:
            risks = marginal_risks(free_now, free_pmf, ringing, share, lines)
            n = int(np.searchsorted(risks, allowance, side="right"))
            if n < lines or lines >= cap:
                break
            lines = min(cap, 2 * lines)
        n = max(n, floor)
        self._track_dial_rate(n, now)
        if n:
            dialed = float(risks[:n].sum())
            if not self.budget.fallback:  # the cautious lines would drag the predicted rate down
                keep = (1.0 - 1.0 / c.rate_memory_lines) ** n
                self._risk_sum = self._risk_sum * keep + dialed
                self._risk_lines = self._risk_lines * keep + n
            self._predicted += self.model.p_human * dialed
        return n
