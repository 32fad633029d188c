"""Our predictive pacer: expected free agents over the ring horizon, under a 30-day abandon budget.

Inner loop (every decision): from measured distributions it estimates, for each busy
agent, the probability of being free when a call dialed now would be answered (given the
time they have already spent talking or wrapping up), and for each line already ringing
the probability it still turns into a person. It then dials the largest number of lines
for which the *marginal* line's chance of finding no agent stays under an allowed risk.

Outer loop (slow): abandons are rare events (a few per hundred answers), so the allowed
risk is not steered from a per-minute rate. It is recalibrated every few hundred live
answers against a setpoint below the legal 3% (47 CFR 64.1200(a)(7), 16 CFR
310.4(b)(4)), and the setpoint is lowered when the campaign's trailing 30-day tally has
spent more than its share. If the 30-day tally approaches the limit, the pacer falls
back to progressive dialing (one line per idle agent) until the rate is back down.
Warm-up (too few measurements for a model) is progressive too.

Pure Python, no numpy: the campaign runtime imports this module.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from dialer.pacing.simple import progressive_lines
from dialer.pacing.types import (
    REGULATORY_ABANDON_LIMIT,
    AbandonTally,
    EventKind,
    PacingEvent,
    PacingSnapshot,
)

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class PredictiveConfig:
    """Knobs of the predictive pacer; the defaults are what the benchmark runs."""

    abandon_limit: float = REGULATORY_ABANDON_LIMIT
    # Internal target for the realized rate, well under the limit so that a 30-day window
    # stays under 3% with high probability.
    setpoint: float = 0.02
    initial_risk: float = 0.004
    min_risk: float = 0.0002
    max_risk: float = 0.5
    calibrate_every_answers: int = 400
    calibration_gain: float = 0.5
    # Safety fallback to progressive when the trailing 30-day rate reaches guard_rate,
    # released below release_rate. Rates use at least guard_min_answers as denominator so
    # one early abandon does not trip it.
    guard_rate: float = 0.026
    release_rate: float = 0.021
    guard_min_answers: int = 300
    warmup_answers: int = 30
    warmup_handled: int = 20
    # Seconds a person can wait after AMD before the 2-second deadline passes.
    deadline_slack_seconds: float = 1.0
    rebuild_every: int = 100
    sample_size: int = 400
    dial_sample_size: int = 3000
    max_lines_per_agent: float = 12.0


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


def expected_overflow(mean: float, variance: float) -> float:
    """E[(X)^+] for an integer X approximated as Normal(mean, variance), continuity-corrected."""
    m = mean - 0.5
    if variance <= 1e-12:
        return max(m, 0.0)
    s = math.sqrt(variance)
    z = m / s
    return m * 0.5 * (1.0 + math.erf(z / _SQRT2)) + s * _INV_SQRT_2PI * math.exp(-0.5 * z * z)


class AgentFreeModel:
    """Measured answer, ring, talk and wrap distributions, turned into lookup tables.

    `q_talk[e]`: probability an agent `e` seconds into a call is ready again within the
    horizon (remaining talk plus a wrap-up). `q_wrap[e]`: same for an agent `e` seconds
    into wrap-up. `p_ringing[r]`: probability a line ringing for `r` seconds still becomes a
    call that needs an agent.
    """

    def __init__(self, config: PredictiveConfig) -> None:
        self.config = config
        self.talk = _Samples(config.sample_size)
        self.wrap = _Samples(config.sample_size)
        self.human_delay = _Samples(config.sample_size)
        self.dials = _Samples(config.dial_sample_size)  # +duration for people, -duration otherwise
        self.dials_seen = 0.0
        self.humans_seen = 0.0
        self.human_answers = 0
        self.horizons: list[float] = []
        self.arrival_share: list[float] = []
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
        """Recompute the lookup tables at three arrival horizons (quartiles of the answer delay)."""
        self._since_rebuild = 0
        delays = sorted(self.human_delay.values) or [10.0]
        n_delay = len(delays)
        slack = self.config.deadline_slack_seconds
        self.horizons = [delays[min(n_delay - 1, (n_delay * j) // 4)] for j in (1, 2, 3)]
        # P(a new line becomes a person arriving by the horizon | it becomes a person).
        self.arrival_share = [bisect_right(delays, h) / n_delay for h in self.horizons]
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


class AbandonBudget:
    """The slow outer loop: calibrates the allowed per-line risk and guards the 30-day budget."""

    def __init__(self, config: PredictiveConfig) -> None:
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


class PredictivePacer:
    """Model-based predictive pacer with a 30-day abandon budget and a progressive fallback."""

    name = "predictive"

    def __init__(self, config: PredictiveConfig | None = None) -> None:
        self.config = config or PredictiveConfig()
        self.model = AgentFreeModel(self.config)
        self.budget = AbandonBudget(self.config)

    def observe(self, event: PacingEvent) -> None:
        self.model.observe(event)
        self.budget.observe(event)

    @property
    def mode(self) -> str:
        """'warmup', 'fallback' or 'predictive': which rule the last decision used."""
        if not self.model.ready:
            return "warmup"
        return "fallback" if self.budget.fallback else "predictive"

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        self.budget.update(snapshot.abandon_tally)
        floor = progressive_lines(snapshot)
        if not self.model.ready or self.budget.fallback:
            return min(floor, snapshot.free_lines)
        model = self.model
        model.maybe_rebuild()
        p_new = model.p_human
        cap = min(
            snapshot.free_lines,
            int(self.config.max_lines_per_agent * max(1, snapshot.logged_in_agents)),
        )
        base = float(snapshot.ready_agents - snapshot.calls_waiting)
        horizons = []
        for j in range(len(model.horizons)):
            q_talk, q_wrap, p_ring = model.q_talk[j], model.q_wrap[j], model.p_ringing[j]
            n_talk, n_wrap, n_ring = len(q_talk) - 1, len(q_wrap) - 1, len(p_ring) - 1
            supply = base
            var = 0.0
            for since in snapshot.talking_since:
                e = int(now - since)
                q = q_talk[e if e < n_talk else n_talk]
                supply += q
                var += q * (1.0 - q)
            for since in snapshot.wrapping_since:
                e = int(now - since)
                q = q_wrap[e if e < n_wrap else n_wrap]
                supply += q
                var += q * (1.0 - q)
            demand = 0.0
            for since in snapshot.ringing_since:
                r = int(now - since)
                p = p_ring[r if r < n_ring else n_ring]
                demand += p
                var += p * (1.0 - p)
            horizons.append((demand - supply, var, p_new * model.arrival_share[j]))

        def marginal_risk(k: int) -> float:
            """Chance the k-th new line, once a person, finds no agent (averaged over the
            answer-delay quartiles at which it may arrive)."""
            total = 0.0
            for excess, var, p_arrive in horizons:
                if p_arrive <= 0.0:
                    continue
                step = p_arrive * (1.0 - p_arrive)
                with_k = expected_overflow(excess + k * p_arrive, var + k * step)
                without = expected_overflow(excess + (k - 1) * p_arrive, var + (k - 1) * step)
                total += (with_k - without) / p_arrive
            return total / len(horizons)

        # The marginal risk grows with k (expected overflow is convex): bisect for the last
        # line whose risk stays within the allowance.
        allowed = self.budget.risk
        lo, hi = 0, cap
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if marginal_risk(mid) <= allowed:
                lo = mid
            else:
                hi = mid - 1
        n = lo
        return max(n, min(floor, snapshot.free_lines))
