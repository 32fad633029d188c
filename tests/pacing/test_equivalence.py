"""The speed work changed how decisions are computed, not what they are.

`tests/pacing/reference/` keeps the simulator engine and the predictive pacer as they were
before (commit aa933b2). Whole simulations under the current code give the same per-day
counters as under those references: same dials, same answers, same abandons.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dialer.pacing import (
    AdaptMode,
    FixedRatioPacer,
    PowerPacer,
    PredictivePacer,
    ProgressivePacer,
    VicidialAdaptivePacer,
    VicidialParams,
)
from dialer.pacing.predictive import AgentFreeModel, PredictiveConfig, marginal_risks, poisson_binomial
from dialer.pacing.types import Pacer
from dialer.simulator.engine import Simulation, run_together, simulate
from dialer.simulator.scenario import Scenario, scenario_from_mapping
from tests.pacing.reference import engine_v1, predictive_v1

pytestmark = pytest.mark.timeout(120)


def scenario(agents: int, p_live: float, talk: str = "short", days: int = 3, hours: float = 0.5) -> Scenario:
    talks: dict[str, Any] = {
        "short": {"dist": "lognormal", "mean": 60, "sd": 40},
        "long": {"dist": "mixture", "components": [
            {"weight": 0.55, "dist": "exponential", "mean": 30},
            {"weight": 0.45, "dist": "lognormal", "mean": 300, "sd": 200},
        ]},
    }  # fmt: skip
    return scenario_from_mapping({
        "name": f"n{agents}_p{p_live}_{talk}", "agents": agents, "days": days, "hours_per_day": hours,
        "p_live": p_live, "p_machine": 0.2, "p_busy": 0.1, "p_unallocated": 0.08,
        "ring_seconds": {"dist": "lognormal", "mean": 9, "sd": 5}, "ring_timeout_seconds": 20,
        "greeting_seconds": {"dist": "uniform", "low": 0.8, "high": 2.0},
        "amd_seconds": {"dist": "uniform", "low": 0.6, "high": 1.2},
        "amd_machine_seconds": {"dist": "uniform", "low": 2.5, "high": 4.0},
        "talk_seconds": talks[talk], "wrap_seconds": {"dist": "exponential", "mean": 10, "shift": 20},
        "max_lines": max(20, 8 * agents), "calls_per_second": max(5.0, agents / 2.0),
        "breaks_per_day": 0, "amd_human_error": 0.01,
    })  # fmt: skip


BASELINES = {
    "progressive": ProgressivePacer,
    "power2.5": lambda: PowerPacer(2.5),
    "ratio1.6": lambda: FixedRatioPacer(1.6),
    "vici_hard_limit": lambda: VicidialAdaptivePacer(VicidialParams(mode=AdaptMode.HARD_LIMIT)),
    "vici_average": lambda: VicidialAdaptivePacer(VicidialParams(mode=AdaptMode.AVERAGE)),
}


@pytest.mark.parametrize("policy", sorted(BASELINES))
def test_the_engine_gives_the_reference_results_for_every_baseline(policy: str) -> None:
    sc = scenario(6, 0.12, days=2)
    for replication in range(2):
        before = engine_v1.simulate(sc, BASELINES[policy](), 7, replication)
        after = simulate(sc, BASELINES[policy](), 7, replication)
        assert after.daily == before.daily


def test_skipping_idle_seconds_of_a_state_only_pacer_changes_nothing() -> None:
    sc = scenario(4, 0.25, "long", days=2)
    for make in (ProgressivePacer, lambda: FixedRatioPacer(1.8)):
        asked_always = Simulation(sc, make(), 3, skip_idle_decisions=False)
        skipping = Simulation(sc, make(), 3)
        assert skipping.run().daily == asked_always.run().daily
        assert skipping.decisions < asked_always.decisions / 3


@pytest.mark.parametrize(("agents", "p_live", "talk"), [(3, 0.12, "short"), (8, 0.05, "long"), (25, 0.25, "short")])
def test_the_predictive_pacer_decides_as_before(agents: int, p_live: float, talk: str) -> None:
    sc = scenario(agents, p_live, talk)
    before = engine_v1.simulate(sc, predictive_v1.PredictivePacer(), 11, 0)
    after = simulate(sc, PredictivePacer(), 11, 0)
    assert after.total("dials") > 500
    assert after.daily == before.daily


def test_simulations_run_together_decide_as_they_would_alone() -> None:
    scenarios = [scenario(5, 0.05), scenario(5, 0.25, "long"), scenario(12, 0.12)]
    pacers: list[Pacer] = [PredictivePacer() for _ in range(6)] + [ProgressivePacer(), FixedRatioPacer(1.5)]
    jobs = [(scenarios[i % 3], i) for i in range(len(pacers))]
    together = run_together([Simulation(sc, p, 5, r) for (sc, r), p in zip(jobs, pacers, strict=True)])
    fresh: list[Pacer] = [PredictivePacer() for _ in range(6)] + [ProgressivePacer(), FixedRatioPacer(1.5)]
    alone = [simulate(sc, p, 5, r) for (sc, r), p in zip(jobs, fresh, strict=True)]
    assert [r.daily for r in together] == [r.daily for r in alone]


def test_the_lookup_tables_are_exactly_the_reference_ones() -> None:
    rng = np.random.default_rng(4)
    for trial in range(6):
        config = PredictiveConfig(deadline_slack_seconds=(0.0, 1.0, 0.4)[trial % 3])
        new, old = AgentFreeModel(config), predictive_v1.AgentFreeModel(config)  # type: ignore[arg-type]
        # Integer-valued samples too: they sit exactly on the tables' second boundaries.
        whole = trial % 2 == 0
        for _ in range(int(rng.integers(30, 400))):
            talk = float(rng.integers(1, 200)) if whole else float(rng.lognormal(3.5, 1.0))
            wrap = float(rng.integers(15, 40)) if whole else 20.0 + float(rng.exponential(10.0))
            for model in (new, old):
                model.talk.add(talk)
                model.wrap.add(wrap)
        for _ in range(800):
            seconds = float(rng.uniform(0.5, 25.0))
            person = bool(rng.random() < 0.1)
            for model in (new, old):
                if person:
                    model.human_delay.add(seconds)
                model.dials.add(seconds if person else -seconds)
        new.rebuild()
        old.rebuild()
        assert new.horizons == old.horizons
        assert new.q_talk.tolist() == [list(row) for row in old.q_talk]
        assert new.q_wrap.tolist() == [list(row) for row in old.q_wrap]
        assert new.p_ringing.tolist() == [list(row) for row in old.p_ringing]


def test_the_array_formulas_match_the_reference_ones_to_rounding() -> None:
    rng = np.random.default_rng(8)
    for _ in range(400):
        agents = int(rng.integers(0, 70))
        q = rng.random((5, agents)) ** rng.choice([0.3, 1.0, 3.0])
        assert np.abs(poisson_binomial(q) - predictive_v1.poisson_binomial(q)).max() < 1e-14
        pmf = predictive_v1.poisson_binomial(q)
        free = int(rng.integers(-3, 8))
        ringing = rng.random(5) * rng.choice([0.0, 0.1, 1.0, 10.0])
        share = rng.random(5) * 0.2
        lines = int(rng.integers(1, 40))
        new = marginal_risks(free, pmf, ringing, share, lines)
        old = predictive_v1.marginal_risks(free, pmf, ringing, share, lines)
        assert np.abs(new - old).max() < 1e-13
