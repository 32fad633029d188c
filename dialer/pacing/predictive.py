"""Our predictive pacer: exact counts of free agents and answered calls over the ring horizon.

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

import itertools
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dialer.pacing.types import (
    REGULATORY_ABANDON_LIMIT,
    AbandonTally,
    EventKind,
    PacingEvent,
    PacingSnapshot,
)

FloatArray = np.ndarray[tuple[int, ...], np.dtype[np.float64]]
IntArray = np.ndarray[tuple[int, ...], np.dtype[np.int64]]
BoolArray = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
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
    # Plan the coming seconds' dials with this one: a plan of n lines now assumes as many
    # again in each of the next `plan_seconds` seconds, and every line counts the people
    # those bring before its horizon (n times P(delay <= h - t), t = 1 .. plan_seconds). A
    # quiet moment plans no future dials, unlike count_future_dials' recent rate. 0: off.
    plan_seconds: int = 0


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

    Row k of each table is for horizon k (a quantile of the dial-to-person delay, plus the
    slack after AMD). `q_talk[k, e]`: probability an agent `e` seconds into a call is ready
    again within the horizon (remaining talk plus a wrap-up). `q_wrap[k, e]`: same for an
    agent `e` seconds into wrap-up. `p_ringing[k, r]`: probability a line ringing for `r`
    seconds still becomes a call that needs an agent by then.
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
        self.plan_share: list[float] = []
        self.q_talk: FloatArray = np.zeros((0, 0))
        self.q_wrap: FloatArray = np.zeros((0, 0))
        self.p_ringing: FloatArray = np.zeros((0, 0))
        self.built = 0  # tables built so far: a new value means new tables
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

    def observe_dial_ended(self, seconds: float) -> None:
        """`observe` of a DIAL_ENDED event (it uses only the seconds from the dial)."""
        self.dials_seen = self.dials_seen * self._DECAY + 1.0
        self.humans_seen *= self._DECAY
        self.dials.add(-max(seconds, 1e-3))

    @property
    def ready(self) -> bool:
        c = self.config
        return (
            self.human_answers >= c.warmup_answers
            and len(self.talk) >= c.warmup_handled
            and len(self.wrap) >= c.warmup_handled
        )

    def maybe_rebuild(self) -> None:
        if not self.built or self._since_rebuild >= self.config.rebuild_every:
            self.rebuild()

    def rebuild(self) -> None:
        """Recompute the lookup tables at the arrival horizons (quantiles of the answer delay)."""
        self._since_rebuild = 0
        self.built += 1
        delays = sorted(self.human_delay.values) or [10.0]
        n_delay = len(delays)
        self.horizons = [delays[min(n_delay - 1, int(n_delay * q))] for q in self.quantiles]
        # P(a new line becomes a person arriving by the horizon | it becomes a person).
        self.arrival_share = [bisect_right(delays, h) / n_delay for h in self.horizons]
        # E[(h - delay)^+]: person-seconds by h of a steady stream of one dial a second.
        self.future_weight = [sum(h - d for d in delays if d < h) / n_delay for h in self.horizons]
        # People per planned line a second from the next plan_seconds' dials, by each horizon.
        self.plan_share = [
            sum(bisect_right(delays, h - s) for s in range(1, self.config.plan_seconds + 1)) / n_delay
            for h in self.horizons
        ]
        slack = self.config.deadline_slack_seconds
        tables = busy_agent_tables(self.talk.values, self.wrap.values, [a + slack for a in self.horizons])
        self.q_talk, self.q_wrap = tables
        self.p_ringing = ringing_line_tables(self.dials.values, self.horizons)


def busy_agent_tables(
    talk_samples: list[float], wrap_samples: list[float], horizons: list[float]
) -> tuple[FloatArray, FloatArray]:
    """(q_talk, q_wrap): for each horizon h and whole second e, the chance an agent e seconds
    into a call (into a wrap-up) is ready again within h, from the measured samples.

    A call's remaining time is the conditional survival of the talk samples (t > e), the
    wrap-up its own samples; both are used as measured, so bimodal and heavy-tailed times
    need no fitted law. Vectorised over (talk sample, second) pairs; the sums run in the
    same order as one value at a time, so the tables are exactly what a plain loop gives.
    """
    talks = np.sort(np.asarray(talk_samples, dtype=np.float64))
    wraps = np.sort(np.asarray(wrap_samples, dtype=np.float64))
    n_talk, n_wrap = len(talks), len(wraps) or 1
    talk_size = int(talks[-1]) + 2 if n_talk else 1
    wrap_size = int(wraps[-1]) + 2 if len(wraps) else 1
    seconds_talk = np.arange(talk_size, dtype=np.float64)
    seconds_wrap = np.arange(wrap_size, dtype=np.float64)
    remaining = n_talk - np.searchsorted(talks, seconds_talk, side="right")
    alive = remaining > 0
    # The last second with calls still going carries on to the end of the table.
    last_alive = int(np.count_nonzero(alive)) - 1
    cdf_wrap_e = np.searchsorted(wraps, seconds_wrap, side="right") / n_wrap
    left = 1.0 - cdf_wrap_e
    q_talk = np.empty((len(horizons), talk_size))
    q_wrap = np.empty((len(horizons), wrap_size))
    for k, h in enumerate(horizons):
        if n_talk:
            # Talk sample t counts at the seconds e with e < t <= e + h, weighted by the
            # chance its wrap-up also ends within h: P(wrap <= h - (t - e)).
            first = np.floor(talks - h)[:, None] + np.arange(int(h) + 3, dtype=np.float64)[None, :]
            t = talks[:, None]
            inside = (t > first) & (t <= first + h) & (first >= 0.0) & (first < talk_size)
            e = first[inside]
            weight = np.searchsorted(wraps, h - (t - first)[inside], side="right") / n_wrap
            sums = np.bincount(e.astype(np.int64), weights=weight, minlength=talk_size)
            row = np.ones(talk_size)
            row[alive] = sums[alive] / remaining[alive]
            if last_alive >= 0:
                row[last_alive + 1 :] = row[last_alive]
            q_talk[k] = row
        else:
            q_talk[k] = 1.0
        cdf_wrap_eh = np.searchsorted(wraps, seconds_wrap + h, side="right") / n_wrap
        with np.errstate(divide="ignore", invalid="ignore"):
            q_wrap[k] = np.where(left <= 0.0, 1.0, (cdf_wrap_eh - cdf_wrap_e) / left)
    return q_talk, q_wrap


def ringing_line_tables(dial_samples: list[float], arrivals: list[float]) -> FloatArray:
    """For each arrival horizon a and whole second r: the chance a line still unresolved r
    seconds after its dial turns into a person within a more seconds (measured dials:
    +duration for people, -duration for lines that ended without one)."""
    dials = np.asarray(dial_samples, dtype=np.float64)
    seconds = np.abs(dials).astype(np.int64)
    size = int(seconds.max()) + 2 if len(dials) else 2
    ends = np.bincount(seconds, minlength=size)
    human_ends = np.bincount(seconds[dials > 0], minlength=size)
    alive = np.zeros(size + 1, dtype=np.int64)
    alive[:size] = np.cumsum(ends[::-1])[::-1]
    humans_cum = np.zeros(size + 1, dtype=np.int64)  # humans resolving at second < b
    humans_cum[1:] = np.cumsum(human_ends)
    r = np.arange(size)
    table = np.zeros((len(arrivals), size))
    for k, arrival in enumerate(arrivals):
        upto = np.minimum(size, r + 1 + int(arrival))
        with np.errstate(divide="ignore", invalid="ignore"):
            table[k] = np.where(alive[:size] > 0, (humans_cum[upto] - humans_cum[r]) / alive[:size], 0.0)
    return table


_LOG_FACTORIAL = np.array([math.lgamma(i + 1.0) for i in range(4096)])
ComplexArray = np.ndarray[tuple[int, ...], np.dtype[np.complex128]]
_DFT: dict[int, tuple[ComplexArray, ComplexArray | None]] = {}
# Up to this many agents the inverse transform is one small matrix product; beyond, an FFT.
_MATRIX_DFT_MAX = 20
# Up to this many busy agents or ringing lines, plain Python finds their table columns
# faster than numpy (whose every call costs about a microsecond).
_PYTHON_MAX = 24


def _dft_tables(size: int) -> tuple[ComplexArray, ComplexArray | None]:
    tables = _DFT.get(size)
    if tables is None:
        if size <= _MATRIX_DFT_MAX + 1:
            j = np.arange(size)
            roots = np.exp(-2j * np.pi * j / size) - 1.0
            tables = (roots, np.exp(2j * np.pi * np.outer(j, j) / size) / size)
        else:
            tables = (np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size) - 1.0, None)
        _DFT[size] = tables
    return tables


def poisson_binomial(probabilities: FloatArray) -> FloatArray:
    """Distribution of a count of independent successes, along the last axis.

    `probabilities` has shape (..., m); the result (..., m + 1) holds P(count = c). Exact
    up to rounding (about 1e-15), by the discrete Fourier transform of the generating
    function prod_i (1 - p_i + p_i z) at the (m + 1)-th roots of unity (Hong 2013, "On
    computing the distribution function for the Poisson binomial distribution"): a few
    array operations whatever m, where convolving one agent at a time took m of them.
    """
    m = probabilities.shape[-1]
    if m == 0:
        return np.ones((*probabilities.shape[:-1], 1))
    size = m + 1
    roots, inverse = _dft_tables(size)
    spectrum = (1.0 + probabilities[..., None] * roots).prod(axis=-2)
    if inverse is not None:
        pmf: FloatArray = np.maximum((spectrum @ inverse).real, 0.0)
    else:
        pmf = np.maximum(np.fft.irfft(spectrum, size, axis=-1), 0.0)
    return pmf


def poisson_at_least(mean: FloatArray, size: int) -> FloatArray:
    """P(N >= c) for N ~ Poisson(mean), c = 0 .. size - 1, on a new last axis."""
    c = np.arange(size)
    mu = np.maximum(mean, 1e-300)[..., None]
    # Floored at e^-700 (about 1e-304): smaller terms change no sum that matters here, and
    # subnormal numbers would make exp and cumsum many times slower.
    pmf = np.exp(np.maximum(c * np.log(mu) - mu - _LOG_FACTORIAL[:size], -700.0))
    below = np.cumsum(pmf, axis=-1) - pmf
    # below >= 0 exactly (a rounded sum of non-negative terms minus its last term).
    result: FloatArray = np.maximum(1.0 - below, 0.0)
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
    risks: FloatArray = line_risks(
        np.array([free_now]), free_pmf[None], ringing_people[None], new_person_share[None], lines
    )[0]
    return risks


def line_risks(
    free_now: IntArray, free_pmf: FloatArray, ringing_people: FloatArray, new_person_share: FloatArray, lines: int
) -> FloatArray:
    """`marginal_risks` for several situations at once (leading axis j): (j, lines).

    The chance the n-th line finds no agent at horizon k is P(N >= free + S), N the
    Poisson count of people before it, S the busy agents free by then; computed as
    1 - e^-mu sum_c (mu^c / c!) P(S > c - free), so the Poisson law is needed term by term
    only (no running sum), and the supply's upper tail comes from a sum from the top (no
    1 - CDF cancellation); the sum over c is one matrix product per situation and horizon.
    Left out, as below the rounding of the sum: counts c whose supply tail is under 1e-14
    (the Fourier transform's own error on the supply's law is about that), and counts
    past the Poisson law's last term over 1e-20 (`_POISSON_REACH`).
    """
    jobs, horizons, supply = free_pmf.shape
    # survival[j, k, x] = P(S >= x), x = 0 .. supply; summed from the top.
    survival = np.empty((jobs, horizons, supply + 1))
    survival[:, :, :supply] = np.cumsum(free_pmf[:, :, ::-1], axis=2)[:, :, ::-1]
    survival[:, :, 0] = 1.0  # P(S >= 0), exactly
    survival[:, :, supply] = 0.0
    # The largest count whose tail still matters (x = 0 always does), per situation.
    mattering: BoolArray = survival.max(axis=1) > 1e-14  # (jobs, supply + 1)
    highest = supply - np.argmax(mattering[:, ::-1], axis=1)
    size = max(1, int((free_now + highest).max()))
    # Poisson means of the people before line n at horizon k: (jobs, horizons, lines).
    mean = ringing_people[:, :, None] + np.arange(lines) * new_person_share[:, :, None]
    step = math.ceil(float(mean.max()) / _REACH_STEP)
    if step < len(_POISSON_REACH):
        size = max(1, min(size, int(_POISSON_REACH[step])))
    c = np.arange(size)
    # P(S > c - free) = survival at c - free + 1: 1 below the support, 0 above it.
    index = np.minimum(np.maximum(c - (free_now[:, None] - 1), 0), supply)  # (jobs, size)
    tail = np.take_along_axis(survival, np.broadcast_to(index[:, None, :], (jobs, horizons, size)), axis=2)
    mu = np.maximum(mean, 1e-300)
    terms = np.multiply.outer(np.log(mu), c)  # (jobs, horizons, lines, size): log(mu^c)
    terms -= _LOG_FACTORIAL[:size]
    # Floored at e^-700 (about 1e-304): smaller terms change no sum that matters here, and
    # subnormal numbers would make exp and the product many times slower.
    np.maximum(terms, -700.0, out=terms)
    np.exp(terms, out=terms)
    found = np.matmul(terms, tail[..., None])[..., 0]  # sum_c (mu^c / c!) P(S > c - free)
    found *= np.exp(-mu)
    per_horizon = 1.0 - found  # (jobs, horizons, lines)
    # A person who takes an agent at k leaves a later arrival without one: the line is
    # charged the worst shortage from its own arrival on (horizons are in time order).
    for k in range(horizons - 2, -1, -1):
        np.maximum(per_horizon[:, k], per_horizon[:, k + 1], out=per_horizon[:, k])
    risks: FloatArray = per_horizon.sum(axis=1)
    risks /= horizons  # the mean, without its overhead
    np.maximum(risks, 0.0, out=risks)
    return risks


def _poisson_reach(top: float, step: float) -> IntArray:
    """For mu on a grid (0, step, 2 step, .. top): a count past which every term of the
    Poisson(mu) law is under e^-46 (1e-20). A term at a count above mu grows with mu, so
    the value at the grid point above a mean bounds it."""
    reach = []
    for g in np.arange(0.0, top + step, step):
        mu = max(float(g), 1e-300)
        count = math.floor(g) + 1
        while count * math.log(mu) - mu - math.lgamma(count + 1.0) >= -46.0:
            count += 1
        reach.append(count + 1)
    return np.array(reach, dtype=np.int64)


_REACH_STEP = 0.25
_POISSON_REACH = _poisson_reach(300.0, _REACH_STEP)


class AbandonBudget:
    """The 30-day budget: a setpoint sized to a window's noise, and the target it implies now."""

    def __init__(self, config: PredictiveConfig) -> None:
        self.config = config
        self.fallback = False
        self._day = -1
        self._days_done = 0
        self._answers_done = 0
        self._answers_today = 0
        self._setpoint = 0.0
        self._setpoint_of = (-1, -1)
        # `target` is asked every second and its inputs seldom move: the last answer, and
        # what it was computed from (tally, answers counted, guard state before and after).
        self._target_of: tuple[int, int, int, int, bool] | None = None
        self._target = 0.0
        self._target_fallback = False

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
        key = (self._days_done, self._answers_done if self._days_done else self._answers_today)
        if key != self._setpoint_of:  # it only moves with the answers counted (asked every second)
            c = self.config
            limit = c.abandon_limit
            sd = math.sqrt(limit * (1.0 - limit) / self.window_answers)
            self._setpoint = min(c.max_setpoint, max(0.3 * limit, limit - c.noise_margin_sd * sd))
            self._setpoint_of = key
        return self._setpoint

    @property
    def guard_level(self) -> float:
        """The trailing rate that turns the pacer cautious: `guard_share` x limit, or halfway
        from the setpoint to the limit when the setpoint is that close to it."""
        c = self.config
        return max(c.guard_share * c.abandon_limit, 0.5 * (self.setpoint + c.abandon_limit))

    def target(self, tally: AbandonTally, now: float) -> float:
        """The abandon rate to spend now, and the guard's state, from the trailing tally.

        A function of the tally, the answers counted so far (which fix the setpoint and
        the window) and the guard's state: when none moved since the last call, the last
        answer is the answer (the guard's update is idempotent on the same inputs)."""
        if int(now // SECONDS_PER_DAY) != self._day:
            self._roll(now)
        days_done = self._days_done
        memo = (
            tally.live_answers,
            tally.abandoned,
            days_done,
            self._answers_done if days_done else self._answers_today,
            self.fallback,
        )
        if memo == self._target_of:
            self.fallback = self._target_fallback
            return self._target
        target = self._compute_target(tally)
        self._target_of = memo
        self._target = target
        self._target_fallback = self.fallback
        return target

    def _compute_target(self, tally: AbandonTally) -> float:
        c = self.config
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
    # DIAL_PLACED, CALL_BRIDGED and CALL_DROPPED teach it nothing.
    observed_kinds = frozenset(
        {EventKind.HUMAN_ANSWERED, EventKind.DIAL_ENDED, EventKind.TALK_ENDED, EventKind.WRAP_ENDED,
         EventKind.CALL_ABANDONED}
    )

    def __init__(self, config: PredictiveConfig | None = None) -> None:
        self.config = config or PredictiveConfig()
        self.model = AgentFreeModel(self.config, self.config.horizon_quantiles)
        self.budget = AbandonBudget(self.config)
        self.allowance = self.config.initial_allowance
        self.bias = self.config.bias_prior_ratio
        self._tables_of = 0
        self._q_busy: FloatArray = np.zeros((1, 1))
        self._talk_width = self._wrap_width = self._ring_width = 1
        self._column_kind: list[int] = [0]
        self._column_kinds: IntArray = np.zeros(1, dtype=np.int64)
        self._p_ring: FloatArray = np.zeros((1, 1))
        self._share: FloatArray = np.zeros(1)
        self._future: FloatArray = np.zeros(1)
        self._plan: FloatArray = np.zeros(1)
        self.dial_rate = 0.0
        self._last_decision = math.nan
        self._last_lines = 0
        # Decayed sums: predicted risk of dialed lines, abandons predicted and observed.
        self._risk_sum = 0.0
        self._risk_lines = 0.0
        self._predicted = 0.0
        self._observed = 0.0
        self._next_steer = -math.inf
        self._modelled = False  # the model was ready at a decision (it stays so)
        self.target = self.config.max_setpoint

    def observe(self, event: PacingEvent) -> None:
        self.model.observe(event)
        kind = event.kind
        if kind is EventKind.HUMAN_ANSWERED:
            self.budget.observe(event)  # the budget counts answers only
            decay = 1.0 - 1.0 / self.config.bias_memory_answers
            self._observed *= decay
            self._predicted *= decay
        elif kind is EventKind.CALL_ABANDONED:
            self._observed += 1.0

    def observe_dial_ended(self, seconds: float) -> None:
        """`observe` of a DIAL_ENDED event, which only the model uses (its seconds)."""
        self.model.observe_dial_ended(seconds)

    @property
    def predicted_abandons(self) -> float:
        """Abandons the model predicted for the dialed lines (decayed like the observed ones)."""
        return self._predicted

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
        if self._tables_of != model.built:
            self._tables_of = model.built
            _TABLES_CHANGED[0] += 1
            # One table for every busy agent: talking columns first, then wrap-up ones.
            busy = np.concatenate([model.q_talk, model.q_wrap], axis=1)
            self._q_busy = busy
            self._talk_width = model.q_talk.shape[1]
            self._wrap_width = model.q_wrap.shape[1]
            # Per column (an agent's state and age): 1 = surely free by every horizon
            # (counted as free now), 2 = almost surely not (left out), 0 = counted.
            negligible = self.config.negligible
            certain = busy.min(axis=0) >= 1.0 - negligible
            never = ~certain & ~(busy.max(axis=0) > negligible)
            self._column_kinds = certain.astype(np.int64) + 2 * never.astype(np.int64)
            self._column_kind = self._column_kinds.tolist()
            self._p_ring = model.p_ringing
            self._ring_width = model.p_ringing.shape[1]
            self._share = np.array(model.arrival_share)
            self._future = np.array(model.future_weight)
            self._plan = np.array(model.plan_share)

    def _busy_columns(self, snapshot: PacingSnapshot, now: float) -> tuple[int, list[int] | IntArray]:
        """(busy agents surely free by every horizon, the busy table's column of each of
        the others that may be): talking agents first, then wrapping ones."""
        if len(snapshot.talking_since) + len(snapshot.wrapping_since) > _PYTHON_MAX:
            return self._busy_columns_array(snapshot, now)
        kinds = self._column_kind
        talk_last, wrap_last = self._talk_width - 1, self._wrap_width - 1
        offset = self._talk_width
        certain = 0
        columns: list[int] = []
        for since in snapshot.talking_since:
            age = int(now - since)
            column = age if 0 <= age < talk_last else (talk_last if age > 0 else 0)
            kind = kinds[column]
            if kind == 0:
                columns.append(column)
            elif kind == 1:
                certain += 1
        for since in snapshot.wrapping_since:
            age = int(now - since)
            column = offset + (age if 0 <= age < wrap_last else (wrap_last if age > 0 else 0))
            kind = kinds[column]
            if kind == 0:
                columns.append(column)
            elif kind == 1:
                certain += 1
        return certain, columns

    def _busy_columns_array(self, snapshot: PacingSnapshot, now: float) -> tuple[int, list[int] | IntArray]:
        """`_busy_columns` with numpy, for large teams (the same columns, in the same order)."""
        # One array for both (fewer numpy calls): whole seconds, clipped per part, wrap-up
        # columns after the talking ones.
        talkers = len(snapshot.talking_since)
        columns = (now - np.array(snapshot.talking_since + snapshot.wrapping_since, dtype=np.float64)).astype(np.int64)
        np.maximum(columns, 0, out=columns)
        np.minimum(columns[:talkers], self._talk_width - 1, out=columns[:talkers])
        wrap = columns[talkers:]
        np.minimum(wrap, self._wrap_width - 1, out=wrap)
        wrap += self._talk_width
        kinds = self._column_kinds[columns]
        kept: IntArray = columns[kinds == 0]
        return int(np.count_nonzero(kinds == 1)), kept

    def _ringing_people(self, snapshot: PacingSnapshot, now: float) -> FloatArray:
        """Expected people from the lines already ringing, by each horizon."""
        last = self._ring_width - 1
        ages: list[int] | IntArray
        if len(snapshot.ringing_since) > _PYTHON_MAX:
            since = np.array(snapshot.ringing_since, dtype=np.float64)
            ages = np.minimum(np.maximum((now - since).astype(np.int64), 0), last)
        else:
            ages = [min(max(int(now - since), 0), last) for since in snapshot.ringing_since]
        ringing: FloatArray = self._p_ring[:, ages].sum(axis=1)
        return ringing

    def situation(self, snapshot: PacingSnapshot, now: float) -> tuple[int, FloatArray, FloatArray, FloatArray]:
        """(agents certainly free, pmf of busy agents free by each horizon, expected people
        from ringing lines by each horizon, chance a new line is a person by each horizon)."""
        self._tables()
        c = self.config
        certain, columns = self._busy_columns(snapshot, now)
        free_now = snapshot.ready_agents - snapshot.calls_waiting + certain
        ringing = self._ringing_people(snapshot, now)
        if c.count_future_dials:
            ringing = ringing + self.dial_rate * self.model.p_human * self._future
        return free_now, poisson_binomial(self._q_busy[:, columns]), ringing, self.model.p_human * self._share

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
        return PredictivePacer.decide_many([self], [snapshot], now)[0]

    @staticmethod
    def decide_many(pacers: Sequence[PredictivePacer], snapshots: Sequence[PacingSnapshot], now: float) -> list[int]:
        """`decide` for several pacers at once (the simulator runs replications side by side):
        each pacer's answer is the one it would give alone; the array work is shared."""
        if len(pacers) >= _BATCH_MIN and all(p.config.count_future_dials is False for p in pacers):
            return _decide_batch(pacers, snapshots, now)
        answers = [0] * len(pacers)
        jobs: list[_Decision] = []
        for i, (pacer, snapshot) in enumerate(zip(pacers, snapshots, strict=True)):
            opened = pacer.open_decision(snapshot, now)
            if isinstance(opened, int):
                answers[i] = opened
            else:
                opened.index = i
                jobs.append(opened)
        while jobs:
            again: list[_Decision] = []
            for job, risks in zip(jobs, _risks_of(jobs), strict=True):
                # Risks rise with the line's rank: the answer is the number under the allowance.
                n = int(np.searchsorted(risks, job.allowance, side="right"))
                if n < job.lines or job.lines >= job.cap:
                    answers[job.index] = job.pacer.close_decision(job, risks, n, now)
                else:
                    job.lines = min(job.cap, 2 * job.lines)
                    again.append(job)
            jobs = again
        return answers

    @property
    def tables_version(self) -> int:
        """Which lookup tables the pacer holds (0: none yet); a new value means new tables."""
        return self._tables_of

    @property
    def horizon_count(self) -> int:
        return int(self._q_busy.shape[0])

    def batch_tables(self) -> BatchTables:
        """The lookup tables as `_decide_batch` stacks them (the arrays themselves, not copies)."""
        return BatchTables(
            busy=self._q_busy,
            kinds=self._column_kinds,
            talk_width=self._talk_width,
            wrap_width=self._wrap_width,
            ring=self._p_ring,
            share=self._share,
            plan=self._plan,
        )

    def first_lines(self, floor: int, cap: int) -> int:
        """Lines whose risks a decision computes first (any start gives the same answer;
        about what the last decision needed saves a round)."""
        return min(cap, max(8, 2 * floor, self._last_lines + 4))

    def open_limits(self, snapshot: PacingSnapshot, now: float) -> int | tuple[float, int, int]:
        """The scalar part of a decision: the answer itself when no risk is needed (warming
        up, no line free), else (allowance, floor, cap); the tables are up to date after it."""
        c = self.config
        target = self.budget.target(snapshot.abandon_tally, now)
        self.target = target
        free_lines = snapshot.free_lines
        # min(progressive_lines(snapshot), free_lines) (`dialer.pacing.simple`), inline:
        # asked every second of every pacer.
        ready = len(snapshot.ready_since)
        floor = ready - len(snapshot.ringing_since) - snapshot.calls_waiting
        if floor < 0:
            floor = 0
        if floor > free_lines:
            floor = free_lines
        if not self._modelled:
            if not self.model.ready:
                return floor
            self._modelled = True  # the model's samples only grow: ready stays ready
        if now >= self._next_steer:
            self._steer(now, target)
        allowance = c.min_allowance if self.budget.fallback else self.allowance
        logged_in = ready + len(snapshot.talking_since) + len(snapshot.wrapping_since) + snapshot.paused_agents
        cap = min(free_lines, int(c.max_lines_per_agent * max(1, logged_in)))
        if cap <= 0:
            return 0
        self._tables()
        return allowance, floor, cap

    def open_decision(self, snapshot: PacingSnapshot, now: float) -> int | _Decision:
        """Everything of a decision before the risks: the answer itself when no risk is
        needed (warming up, no line free), else what the risk computation needs."""
        c = self.config
        limits = self.open_limits(snapshot, now)
        if isinstance(limits, int):
            return limits
        allowance, floor, cap = limits
        certain, columns = self._busy_columns(snapshot, now)
        ringing = self._ringing_people(snapshot, now)
        if c.count_future_dials:
            ringing = ringing + self.dial_rate * self.model.p_human * self._future
        share = self.model.p_human * self._share
        if c.plan_seconds:
            # The n-th line of a plan of n a second: n - 1 others now, n in each coming second
            # arriving earlier: (ringing + plan) + (n - 1) x (share + plan).
            planned = self.model.p_human * self._plan
            ringing = ringing + planned
            share = share + planned
        return _Decision(
            pacer=self,
            free_now=snapshot.ready_agents - snapshot.calls_waiting + certain,
            busy=self._q_busy[:, columns],
            ringing=ringing,
            share=share,
            allowance=allowance,
            floor=floor,
            cap=cap,
            lines=self.first_lines(floor, cap),
        )

    def close_decision(self, job: _Decision, risks: FloatArray, n: int, now: float) -> int:
        """The answer from the risks of the first `len(risks)` new lines (n under the allowance)."""
        return self.close_risks(risks, n, job.floor, now)

    def close_risks(self, risks: FloatArray, n: int, floor: int, now: float) -> int:
        """The answer from the risks of the first `len(risks)` new lines (n under the allowance)."""
        c = self.config
        self._last_lines = n
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


@dataclass(slots=True)
class _Decision:
    """One pacer's decision waiting for its line risks."""

    pacer: PredictivePacer
    free_now: int
    busy: FloatArray  # (horizons, agents): chance each busy agent is free by each horizon
    ringing: FloatArray  # (horizons,)
    share: FloatArray  # (horizons,)
    allowance: float
    floor: int
    cap: int
    lines: int
    index: int = 0


def _risks_of(jobs: Sequence[_Decision]) -> list[FloatArray]:
    """Each decision's line risks (its first `lines` lines), computed in batches of
    decisions of about the same size: padding a small team's arrays to a large team's
    would cost more than the batch saves."""
    out: list[FloatArray] = [np.zeros(0)] * len(jobs)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, job in enumerate(jobs):
        horizons, agents = job.busy.shape
        groups.setdefault((horizons, agents.bit_length(), job.lines.bit_length()), []).append(i)
    for (horizons, _, _), members in groups.items():
        agents = max(jobs[i].busy.shape[1] for i in members)
        lines = max(jobs[i].lines for i in members)
        busy = np.zeros((len(members), horizons, agents))
        for row, i in enumerate(members):
            busy[row, :, : jobs[i].busy.shape[1]] = jobs[i].busy
        risks = line_risks(
            np.array([jobs[i].free_now for i in members]),
            poisson_binomial(busy),
            np.array([jobs[i].ringing for i in members]),
            np.array([jobs[i].share for i in members]),
            lines,
        )
        for row, i in enumerate(members):
            out[i] = risks[row, : jobs[i].lines]
    return out


# From this many pacers deciding together, `decide_many` gathers every pacer's busy agents
# and ringing lines with a fixed number of array operations per second (`_decide_batch`)
# instead of a few per pacer: numpy's fixed cost per call, not the arithmetic, was most of a
# decision even at 100 agents (about 200 us a decision, 15-20 array calls of small arrays).
_BATCH_MIN = 2


@dataclass(frozen=True, slots=True)
class BatchTables:
    """One pacer's lookup tables (`PredictivePacer.batch_tables`): busy columns (talking
    ones, then wrap-up ones) by horizon, each column's kind (0 counted, 1 surely free,
    2 left out), ringing-line columns by horizon, and the new lines' arrival shares."""

    busy: FloatArray  # (horizons, talk_width + wrap_width)
    kinds: IntArray
    talk_width: int
    wrap_width: int
    ring: FloatArray  # (horizons, ring width)
    share: FloatArray
    plan: FloatArray


@dataclass(slots=True)
class _Layout:
    """Every pacer's lookup tables of one batch, stacked: row r of `busy` is one busy
    column (an agent's state and whole seconds) of one pacer, its last row never free;
    row r of `ring` one ringing-line column. Rebuilt when any pacer's tables change."""

    key: tuple[tuple[int, int], ...]
    busy: FloatArray  # (rows + 1, horizons)
    kinds: IntArray  # (rows + 1,): 0 counted, 1 surely free, 2 left out
    talk_offset: IntArray  # per pacer: its first talking column's row
    talk_last: IntArray
    wrap_offset: IntArray
    wrap_last: IntArray
    ring: FloatArray  # (ring rows + 1, horizons), the last row zero
    ring_offset: IntArray
    ring_last: IntArray
    share: FloatArray  # (pacers, horizons)
    plan: FloatArray  # (pacers, horizons)
    pad: int


_LAYOUTS: dict[tuple[int, ...], _Layout] = {}
# Bumped whenever any pacer's lookup tables change: while it stands still, the same list of
# pacers asking has the same layout (checked by list equality: identity, in C).
_TABLES_CHANGED = [0]


@dataclass(slots=True)
class _LastBatch:
    """The last batch's pacers, with their layout and slots (`_decide_batch`)."""

    pacers: list[PredictivePacer]
    tables_changed: int
    layout: _Layout
    slot: dict[int, int]  # a pacer's (id's) row in the layout
    # The pacers asking (indices), their rows, and whether any plans coming dials.
    pending: list[int] = field(default_factory=list)
    at: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    plans: bool = False


_LAST_BATCH: list[_LastBatch] = []


def _layout(pacers: Sequence[PredictivePacer]) -> _Layout:
    key = tuple((id(p), p.tables_version) for p in pacers)
    ids = tuple(k[0] for k in key)
    layout = _LAYOUTS.get(ids)
    if layout is not None and layout.key == key:
        return layout
    tables = [p.batch_tables() for p in pacers]
    talk_w = np.array([t.talk_width for t in tables], dtype=np.int64)
    wrap_w = np.array([t.wrap_width for t in tables], dtype=np.int64)
    widths = talk_w + wrap_w
    offsets = np.cumsum(widths) - widths
    pad = int(widths.sum())
    horizons = tables[0].busy.shape[0]
    busy = np.concatenate([t.busy.T for t in tables] + [np.zeros((1, horizons))])
    kinds = np.concatenate([t.kinds for t in tables] + [np.array([2], dtype=np.int64)])
    ring_w = np.array([t.ring.shape[1] for t in tables], dtype=np.int64)
    ring = np.concatenate([t.ring.T for t in tables] + [np.zeros((1, horizons))])
    layout = _Layout(
        key=key,
        busy=np.ascontiguousarray(busy),
        kinds=kinds,
        talk_offset=offsets,
        talk_last=talk_w - 1,
        wrap_offset=offsets + talk_w,
        wrap_last=wrap_w - 1,
        ring=np.ascontiguousarray(ring),
        ring_offset=np.cumsum(ring_w) - ring_w,
        ring_last=ring_w - 1,
        share=np.array([t.share for t in tables]),
        plan=np.array([t.plan for t in tables]),
        pad=pad,
    )
    if len(_LAYOUTS) > 64:  # simulations come and go: keep the recent batches only
        _LAYOUTS.clear()
    _LAYOUTS[ids] = layout
    return layout


def _decide_batch(pacers: Sequence[PredictivePacer], snapshots: Sequence[PacingSnapshot], now: float) -> list[int]:
    """`decide_many` with every pacer's columns gathered in one pass (see `_BATCH_MIN`).

    The same counts as `open_decision` pacer by pacer (the same whole seconds, clipped
    the same way, the same table values, the busy agents in the same order); sums may
    round differently in the last bit.
    """
    answers = [0] * len(pacers)
    limits: list[tuple[float, int, int]] = []
    pending: list[int] = []
    for i, (pacer, snapshot) in enumerate(zip(pacers, snapshots, strict=True)):
        opened = pacer.open_limits(snapshot, now)
        if isinstance(opened, int):
            answers[i] = opened
        else:
            pending.append(i)
            limits.append(opened)
    if not pending:
        return answers
    # The layout holds every pacer with tables (stable once warmed up), not only those
    # asking now: the set asking changes from second to second. The same pacers asking with
    # no table changed since the last second: the last second's layout, slots and checks.
    batch = _LAST_BATCH[0] if _LAST_BATCH else None
    fresh = batch is None or batch.tables_changed != _TABLES_CHANGED[0] or batch.pacers != pacers
    if (fresh or batch is None or batch.pending != pending) and len({pacers[i].horizon_count for i in pending}) > 1:
        for i in pending:  # pacers with different horizons: one at a time
            answers[i] = PredictivePacer.decide_many([pacers[i]], [snapshots[i]], now)[0]
        return answers
    if fresh or batch is None:
        tabled = [p for p in pacers if p.tables_version]
        batch = _LastBatch(list(pacers), _TABLES_CHANGED[0], _layout(tabled), {id(p): k for k, p in enumerate(tabled)})
        _LAST_BATCH[:] = [batch]
    if batch.pending != pending:
        batch.pending = pending
        batch.at = np.array([batch.slot[id(pacers[i])] for i in pending], dtype=np.int64)
        batch.plans = any(pacers[i].config.plan_seconds for i in pending)
    layout, at = batch.layout, batch.at
    jobs = len(pending)
    snaps = [snapshots[i] for i in pending]
    # Busy agents: talking then wrapping, pacer by pacer, as `_busy_columns` orders them.
    parts: list[tuple[float, ...]] = []
    lengths: list[int] = []
    for snap in snaps:
        parts.append(snap.talking_since)
        parts.append(snap.wrapping_since)
        lengths.append(len(snap.talking_since))
        lengths.append(len(snap.wrapping_since))
    counts = np.array(lengths, dtype=np.int64)
    total = int(counts.sum())
    since = np.fromiter(itertools.chain.from_iterable(parts), dtype=np.float64, count=total)
    columns = (now - since).astype(np.int64)
    np.maximum(columns, 0, out=columns)
    last = np.empty(2 * jobs, dtype=np.int64)
    last[0::2] = layout.talk_last[at]
    last[1::2] = layout.wrap_last[at]
    offset = np.empty(2 * jobs, dtype=np.int64)
    offset[0::2] = layout.talk_offset[at]
    offset[1::2] = layout.wrap_offset[at]
    np.minimum(columns, np.repeat(last, counts), out=columns)
    columns += np.repeat(offset, counts)
    kinds = layout.kinds[columns]
    owner = np.repeat(np.arange(jobs, dtype=np.int64), counts[0::2] + counts[1::2])
    certain = np.bincount(owner[kinds == 1], minlength=jobs)
    kept = kinds == 0
    kept_columns = columns[kept]
    kept_owner = owner[kept]
    per_job = np.bincount(kept_owner, minlength=jobs)
    width = int(per_job.max()) if jobs else 0
    index = np.full((jobs, width), layout.pad, dtype=np.int64)
    starts = np.cumsum(per_job) - per_job
    index[kept_owner, np.arange(len(kept_columns)) - starts[kept_owner]] = kept_columns
    busy = layout.busy[index].transpose(0, 2, 1)  # (jobs, horizons, width)
    free_pmf = poisson_binomial(busy)
    # Ringing lines: expected people by each horizon, summed per pacer.
    ring_counts = np.array([len(snap.ringing_since) for snap in snaps], dtype=np.int64)
    rings = int(ring_counts.sum())
    ring_since = np.fromiter(
        itertools.chain.from_iterable(snap.ringing_since for snap in snaps), dtype=np.float64, count=rings
    )
    ages = (now - ring_since).astype(np.int64)
    np.maximum(ages, 0, out=ages)
    np.minimum(ages, np.repeat(layout.ring_last[at], ring_counts), out=ages)
    ages += np.repeat(layout.ring_offset[at], ring_counts)
    values = np.concatenate([layout.ring[ages], np.zeros((1, layout.ring.shape[1]))])
    ring_starts = np.cumsum(ring_counts) - ring_counts
    ringing = np.add.reduceat(values, ring_starts, axis=0)
    ringing[ring_counts == 0] = 0.0
    p_human = np.array([pacers[i].model.p_human for i in pending])
    share = p_human[:, None] * layout.share[at]
    if batch.plans:
        planned = p_human[:, None] * layout.plan[at]
        ringing = ringing + planned
        share = share + planned
    free_now = np.array([len(s.ready_since) - s.calls_waiting for s in snaps], dtype=np.int64) + certain
    lines = [pacers[i].first_lines(floor, cap) for i, (_, floor, cap) in zip(pending, limits, strict=True)]
    todo = list(range(jobs))
    while todo:
        again: list[int] = []
        # Risk rounds in groups of about the same number of lines (padding lines costs work).
        groups: dict[int, list[int]] = {}
        for j in todo:
            groups.setdefault(lines[j].bit_length(), []).append(j)
        for members in groups.values():
            rows = np.array(members, dtype=np.int64)
            most = max(lines[j] for j in members)
            risks = line_risks(free_now[rows], free_pmf[rows], ringing[rows], share[rows], most)
            # np.searchsorted(row, allowance, side="right") row by row, as one binary search
            # in Python over the rows' values (the same probes, so the same answer).
            values = risks.tolist()
            for row, j in enumerate(members):
                allowance, floor, cap = limits[j]
                mine = risks[row, : lines[j]]
                n = bisect_right(values[row], allowance, 0, lines[j])
                if n < lines[j] or lines[j] >= cap:
                    pacer = pacers[pending[j]]
                    answers[pending[j]] = pacer.close_risks(mine, n, floor, now)
                else:
                    lines[j] = min(cap, 2 * lines[j])
                    again.append(j)
        todo = again
    return answers
