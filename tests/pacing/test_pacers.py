"""Pacer decisions on hand-built situations (pure logic, explicit `now`)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from dialer.pacing import (
    AbandonTally,
    AdaptMode,
    EventKind,
    FixedRatioPacer,
    PacingEvent,
    PacingSnapshot,
    PowerPacer,
    PredictiveConfig,
    PredictivePacer,
    PreviewPacer,
    ProgressivePacer,
    VicidialAdaptivePacer,
    VicidialParams,
)
from dialer.pacing.predictive import AbandonBudget, marginal_risks, poisson_at_least, poisson_binomial
from dialer.pacing.vicidial import AdaptSample, adapt_step, calls_to_place

pytestmark = pytest.mark.timeout(20)


def snap(
    ready: int = 0,
    talking: tuple[float, ...] = (),
    wrapping: tuple[float, ...] = (),
    ringing: int = 0,
    waiting: int = 0,
    paused: int = 0,
    free_lines: int = 100,
    tally: AbandonTally | None = None,
    ready_since: float = 0.0,
) -> PacingSnapshot:
    return PacingSnapshot(
        ready_since=(ready_since,) * ready,
        talking_since=talking,
        wrapping_since=wrapping,
        paused_agents=paused,
        ringing_since=(0.0,) * ringing,
        calls_waiting=waiting,
        free_lines=free_lines,
        abandon_tally=tally or AbandonTally(),
    )


def test_progressive_dials_one_line_per_uncovered_ready_agent() -> None:
    pacer = ProgressivePacer()
    assert pacer.decide(snap(ready=3), 10.0) == 3
    assert pacer.decide(snap(ready=3, ringing=2), 10.0) == 1
    assert pacer.decide(snap(ready=3, ringing=2, waiting=1), 10.0) == 0
    assert pacer.decide(snap(ready=0, ringing=0, talking=(1.0,)), 10.0) == 0


def test_preview_waits_until_the_agent_has_read_the_lead() -> None:
    pacer = PreviewPacer(preview_seconds=10)
    assert pacer.decide(snap(ready=2, ready_since=5.0), 10.0) == 0
    assert pacer.decide(snap(ready=2, ready_since=5.0), 15.0) == 2


def test_power_dials_a_fixed_number_of_lines_per_ready_agent() -> None:
    pacer = PowerPacer(2.5)
    assert pacer.decide(snap(ready=2), 0.0) == 5
    assert pacer.decide(snap(ready=2, ringing=4), 0.0) == 1
    assert pacer.decide(snap(ready=0, ringing=4), 0.0) == 0


def test_fixed_ratio_counts_talking_agents_and_their_calls_like_vicidial() -> None:
    # Level 2, 10 agents talking, nothing ringing: 10 more lines (anchors.md b.4).
    pacer = FixedRatioPacer(2.0)
    assert pacer.decide(snap(talking=(0.0,) * 10), 5.0) == 10
    assert pacer.decide(snap(talking=(0.0,) * 10, ringing=10), 5.0) == 0


def _sample(**overrides: float) -> AdaptSample:
    values: dict[str, float] = dict(
        avg_ready=2.0, avg_waiting=0.0, avg_total=10.0, calls_1m=0, drops_1m=0,
        calls_today=0, answers_today=0, drops_today=0, now_hhmm=1200,
    )  # fmt: skip
    values.update(overrides)
    return AdaptSample(**values)  # type: ignore[arg-type]


def test_vicidial_level_is_a_multiplicative_integrator_on_idle_agents() -> None:
    p = VicidialParams()
    # 2 idle of 10 agents: DL * (1 + 0.2) = 1.8
    assert adapt_step(1.5, _sample(), p) == pytest.approx(1.8)
    # Waiting calls push it down, floored at 1.0, capped at 3.0.
    assert adapt_step(1.5, _sample(avg_ready=0.0, avg_waiting=8.0), p) == 1.0
    assert adapt_step(2.9, _sample(avg_ready=5.0), p) == 3.0
    # Intensity +20: ramps up faster (k = 1.2) and down slower (k = 0.8).
    hot = VicidialParams(intensity=20)
    assert adapt_step(1.5, _sample(), hot) == pytest.approx(1.5 * (1 + 0.2 * 1.2))
    assert adapt_step(2.0, _sample(avg_ready=0.0, avg_waiting=2.0), hot) == pytest.approx(2.0 * (1 - 0.2 * 0.8))


def test_vicidial_drop_clamps_per_mode() -> None:
    over = dict(calls_today=100, answers_today=100, drops_today=5, avg_ready=0.0)
    assert adapt_step(2.0, _sample(**over), VicidialParams(mode=AdaptMode.HARD_LIMIT)) == 1.0
    assert adapt_step(2.4, _sample(**over), VicidialParams(mode=AdaptMode.AVERAGE)) == pytest.approx(1.2)
    # TAPERED: 2100 - 1430 = 670 -> x0.67 (HHMM arithmetic quirk).
    tapered = VicidialParams(mode=AdaptMode.TAPERED)
    assert adapt_step(3.0, _sample(now_hhmm=1430, **over), tapered) == pytest.approx(2.01)
    assert adapt_step(3.0, _sample(now_hhmm=2130, **over), tapered) == 1.0
    # No daily clamp before 50 calls; the one-minute brake halves the level.
    assert adapt_step(2.0, _sample(calls_today=40, answers_today=40, drops_today=10, avg_ready=0.0),
                      VicidialParams()) == 2.0  # fmt: skip
    assert adapt_step(3.0, _sample(calls_1m=30, drops_1m=20, avg_ready=0.0), VicidialParams()) == 1.5


def test_vicidial_placement_rounds_level_times_active_agents() -> None:
    assert calls_to_place(2.0, 10, 10) == 10
    assert calls_to_place(1.25, 2, 0) == 2  # round(2.5) = 2, half to even like Perl's %.0f
    assert calls_to_place(1.0, 3, 5) == 0


def test_vicidial_pacer_places_every_two_and_a_half_seconds() -> None:
    pacer = VicidialAdaptivePacer(VicidialParams(initial_level=2.0))
    placed = [pacer.decide(snap(ready=2), float(t)) for t in range(0, 6)]
    assert placed[0] == 4 and placed[1] == 0 and placed[2] == 0 and placed[3] == 4


def _trained(config: PredictiveConfig | None = None) -> PredictivePacer:
    pacer = PredictivePacer(config)
    now = 0.0
    for i in range(400):
        now += 1.0
        if i % 10 == 0:
            pacer.observe(PacingEvent(EventKind.HUMAN_ANSWERED, now, 10.0))
        else:
            pacer.observe(PacingEvent(EventKind.DIAL_ENDED, now, 20.0))
    for i in range(200):
        pacer.observe(PacingEvent(EventKind.TALK_ENDED, now, 100.0 + (i % 5)))
        pacer.observe(PacingEvent(EventKind.WRAP_ENDED, now, 20.0))
    return pacer


def test_predictive_is_progressive_during_warm_up() -> None:
    pacer = PredictivePacer()
    assert pacer.mode == "warmup"
    assert pacer.decide(snap(ready=2, talking=(0.0,) * 8), 50.0) == 2


def test_predictive_dials_ahead_for_agents_about_to_finish() -> None:
    pacer = _trained()
    assert pacer.mode == "predictive"
    # Eight agents 95 s into ~100 s calls with 20 s wrap-up: free in ~25 s, a ~11 s horizon.
    almost = pacer.decide(snap(talking=(0.0,) * 8), 95.0)
    # Eight agents just starting their calls: nobody free soon.
    fresh = pacer.decide(snap(talking=(95.0,) * 8), 95.0)
    # Same eight agents, now in wrap-up with 10 s left.
    wrapping = pacer.decide(snap(wrapping=(0.0,) * 8), 10.0)
    assert fresh == 0
    assert wrapping > almost >= 0
    assert wrapping > 8  # one in ten answers: more lines than agents


def test_predictive_lines_already_ringing_count_against_new_dials() -> None:
    pacer = _trained()
    alone = pacer.decide(snap(ready=3), 0.0)
    with_ringing = pacer.decide(snap(ready=3, ringing=20), 5.0)
    assert alone > with_ringing >= 0


def test_predictive_turns_cautious_when_the_30_day_budget_is_at_risk() -> None:
    pacer = _trained()
    # Ten agents 10 s from the end of a 20 s wrap-up: almost certainly free, low risk.
    busy = snap(ready=0, wrapping=(0.0,) * 10)
    normal = pacer.decide(busy, 10.0)
    assert pacer.mode == "predictive"
    # Five agents surely free, five not by then: many lines carry a small risk, which the
    # normal allowance takes and the cautious one not.
    later = snap(ready=0, wrapping=(0.0,) * 5 + (2.0,) * 5)
    relaxed = pacer.decide(later, 10.0)
    risky = AbandonTally(live_answers=1000, abandoned=27)  # 2.7% >= 0.9 x 3%
    cautious = pacer.decide(dataclasses.replace(later, abandon_tally=risky), 10.0)
    assert pacer.mode == "fallback"
    assert normal > 10 and 5 <= cautious < relaxed
    # Released once the trailing rate is 0.3 points under the guard (2.4%).
    pacer.decide(dataclasses.replace(later, abandon_tally=AbandonTally(1000, 25)), 11.0)
    assert pacer.mode == "fallback"
    pacer.decide(dataclasses.replace(later, abandon_tally=AbandonTally(1000, 23)), 12.0)
    assert pacer.mode == "predictive"


def test_predictive_steers_the_allowance_down_when_abandons_outrun_the_model() -> None:
    pacer = _trained(PredictiveConfig(steer_every_seconds=1.0))
    situation = snap(ready=1, wrapping=(5.0,) * 6)
    for t in range(30):
        pacer.decide(situation, 20.0 + t)
    before = pacer.allowance
    for _ in range(100):
        pacer.observe(PacingEvent(EventKind.HUMAN_ANSWERED, 60.0, 10.0))
    for _ in range(60):  # far more abandons than the model predicted: bias > 1
        pacer.observe(PacingEvent(EventKind.CALL_ABANDONED, 60.0))
    for t in range(5):
        pacer.decide(situation, 61.0 + t)
    assert pacer.bias > 2.0
    assert pacer.allowance < before


def test_poisson_binomial_matches_enumeration() -> None:
    probabilities = [0.1, 0.5, 0.9, 0.3]
    pmf = poisson_binomial(np.array([probabilities]))[0]
    expected = [0.0] * 5
    for outcome in itertools.product((0, 1), repeat=4):
        weight = 1.0
        for hit, p in zip(outcome, probabilities, strict=True):
            weight *= p if hit else 1.0 - p
        expected[sum(outcome)] += weight
    assert pmf == pytest.approx(expected, abs=1e-12)
    assert poisson_binomial(np.zeros((2, 0))).tolist() == [[1.0], [1.0]]


def test_poisson_at_least_is_one_minus_the_cdf() -> None:
    tails = poisson_at_least(np.array([0.0, 2.0]), 4)
    assert tails[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])
    e = math.exp(-2.0)
    assert tails[1].tolist() == pytest.approx([1.0, 1 - e, 1 - 3 * e, 1 - 5 * e])


def test_marginal_risk_of_new_lines_on_hand_built_situations() -> None:
    share = np.array([0.1])
    # One idle agent, nobody busy, nothing ringing: the first line is safe; the k-th line
    # loses when at least one of the k-1 others became a person first.
    no_busy = np.ones((1, 1))
    risks = marginal_risks(1, no_busy, np.zeros(1), share, 3)
    assert risks.tolist() == pytest.approx([0.0, 1 - math.exp(-0.1), 1 - math.exp(-0.2)])
    # No idle agent, one busy agent free by then with probability 0.4: the first line
    # loses when that agent is still busy.
    one_busy = poisson_binomial(np.array([[0.4]]))
    assert marginal_risks(0, one_busy, np.zeros(1), share, 1)[0] == pytest.approx(0.6)
    # A call already waiting takes the idle agent first.
    assert marginal_risks(0, no_busy, np.zeros(1), share, 1)[0] == pytest.approx(1.0)
    # People expected from ringing lines come first too.
    assert marginal_risks(1, no_busy, np.array([0.5]), share, 1)[0] == pytest.approx(1 - math.exp(-0.5))
    # A shortage at a later horizon is charged to a line arriving earlier.
    two = np.array([[1.0, 0.0], [0.0, 1.0]])  # 0 busy agents free at the first horizon, 1 at the second
    early_and_late = marginal_risks(1, two, np.array([0.0, 3.0]), np.array([0.0, 0.0]), 1)
    assert early_and_late[0] == pytest.approx(1 - 4 * math.exp(-3.0))


def test_budget_setpoint_leaves_room_for_a_small_window_noise() -> None:
    config = PredictiveConfig()
    small, large = AbandonBudget(config), AbandonBudget(config)
    for day, budget, answers in ((0, small, 60), (0, large, 2000)):
        for _ in range(answers):
            budget.observe(PacingEvent(EventKind.HUMAN_ANSWERED, day * 86400.0 + 1.0))
    small.target(AbandonTally(), 86400.0 + 2.0)
    large.target(AbandonTally(), 86400.0 + 2.0)
    # 1,800 answers a window: 3 sds of 0.40 points under 3%; 60,000: capped at 2.5%.
    assert small.setpoint == pytest.approx(0.03 - 3 * math.sqrt(0.03 * 0.97 / 1800), rel=1e-6)
    assert large.setpoint == 0.025
    # Under budget: spend some of it now; over budget: spend less.
    under = large.target(AbandonTally(live_answers=20000, abandoned=300), 86400.0 + 3.0)
    over = large.target(AbandonTally(live_answers=20000, abandoned=560), 86400.0 + 3.0)
    assert over < 0.025 < under


def test_future_dials_count_as_demand_when_enabled() -> None:
    plain = _trained()
    future = _trained(PredictiveConfig(count_future_dials=True))
    for pacer in (plain, future):  # dial-to-person delays spread from 6 to 14 s
        for i in range(200):
            pacer.observe(PacingEvent(EventKind.HUMAN_ANSWERED, 400.0, 6.0 + i % 9))
        pacer.observe(PacingEvent(EventKind.TALK_ENDED, 400.0, 100.0))
        pacer.model.rebuild()
    situation = snap(ready=1, wrapping=(8.0,) * 6)
    for t in range(20):  # a steady stream of dials sets the measured dial rate
        plain.decide(situation, 20.0 + t)
        future.decide(situation, 20.0 + t)
    assert future.dial_rate > 0.0
    assert future.decide(situation, 41.0) <= plain.decide(situation, 41.0)
    _, _, ringing_plain, _ = plain.situation(situation, 42.0)
    _, _, ringing_future, _ = future.situation(situation, 42.0)
    assert (ringing_future > ringing_plain).all()


def test_guard_sits_halfway_between_a_high_setpoint_and_the_limit() -> None:
    default = AbandonBudget(PredictiveConfig())
    # No answers seen yet: setpoint 0.9%, guard 0.9 x 3%; a 2.5% setpoint: halfway, 2.75%.
    assert default.guard_level == pytest.approx(0.027)
    high = AbandonBudget(PredictiveConfig(max_setpoint=0.028))
    for _ in range(5000):  # 150,000 answers a window: 3 sds = 0.13 points, capped at 2.8%
        high.observe(PacingEvent(EventKind.HUMAN_ANSWERED, 1.0))
    assert high.setpoint == pytest.approx(0.028)
    assert high.guard_level == pytest.approx(0.029)
    # The trailing rate at 2.8% (the setpoint) does not turn it cautious; at 2.9% it does.
    high.target(AbandonTally(live_answers=100000, abandoned=2800), 2.0)
    assert not high.fallback
    high.target(AbandonTally(live_answers=100000, abandoned=2900), 3.0)
    assert high.fallback


def test_bias_starts_at_its_prior_and_learns_from_observed_abandons() -> None:
    config = PredictiveConfig(steer_every_seconds=1.0)
    pacer = _trained(config)
    assert pacer.bias == config.bias_prior_ratio == 1.5
    situation = snap(ready=1, wrapping=(5.0,) * 6)
    for t in range(40):
        pacer.decide(situation, 20.0 + t)
    assert pacer.predicted_abandons > 0.0
    # No abandon observed: the factor falls from its prior toward observed / predicted = 0.
    expected = (0.0 + 1.5 * config.bias_prior_abandons) / (pacer.predicted_abandons + config.bias_prior_abandons)
    pacer.decide(situation, 61.0)
    assert pacer.bias == pytest.approx(expected, rel=1e-3)
    assert pacer.bias < 1.5


def test_cautious_mode_freezes_the_steering() -> None:
    pacer = _trained(PredictiveConfig(steer_every_seconds=1.0))
    situation = snap(ready=1, wrapping=(5.0,) * 6)
    for t in range(30):
        pacer.decide(situation, 20.0 + t)
    allowance, predicted_rate = pacer.allowance, pacer.predicted_rate
    risky = dataclasses.replace(situation, abandon_tally=AbandonTally(live_answers=1000, abandoned=28))
    for t in range(60):  # a minute cautious: near-riskless lines, target far above them
        pacer.decide(risky, 50.0 + t)
    assert pacer.mode == "fallback"
    # Neither the allowance nor the predicted rate of normal dialing moved meanwhile.
    assert pacer.allowance == allowance
    assert pacer.predicted_rate == predicted_rate
