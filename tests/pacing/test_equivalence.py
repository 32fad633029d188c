"""The speed work changed how decisions are computed, not what they are.

`tests/pacing/reference/` keeps the simulator engine and the predictive pacer as they were
before (commit aa933b2). Whole simulations under the current code give the same per-day
counters as under those references: same dials, same answers, same abandons.
"""

from __future__ import annotations

from collections.abc import Callable
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
from dialer.pacing.types import Pacer, PacingSnapshot
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


BASELINES: dict[str, Callable[[], Pacer]] = {
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


def _trained_model(model: AgentFreeModel, rng: np.random.Generator) -> None:
    for _ in range(300):
        model.talk.add(float(rng.lognormal(4.0, 0.6)))
        model.wrap.add(20.0 + float(rng.exponential(10.0)))
    for _ in range(600):
        seconds = float(rng.uniform(2.0, 20.0))
        person = bool(rng.random() < 0.12)
        if person:
            model.human_delay.add(seconds)
        model.dials.add(seconds if person else -seconds)
    model.rebuild()


def test_the_oracle_leaves_out_only_agents_that_change_nothing() -> None:
    """Above 24 busy agents the oracle's transform skips agents whose chance is exactly 0
    or 1 at every horizon: the supply's law is the full transform's, to rounding."""
    from dialer.simulator.oracle import OutcomeOraclePacer

    rng = np.random.default_rng(12)
    for trial in range(20):
        oracle = OutcomeOraclePacer()
        _trained_model(oracle.model, rng)
        now = 10_000.0
        talking = tuple(now - float(rng.uniform(0, 400)) for _ in range(int(rng.integers(20, 70))))
        wrapping = tuple(now - float(rng.uniform(0, 45)) for _ in range(int(rng.integers(5, 30))))
        snapshot = PacingSnapshot((), talking, wrapping, 0, (), 0, 10)
        model = oracle.model
        ages_t = [min(max(int(now - s), 0), model.q_talk.shape[1] - 1) for s in talking]
        ages_w = [min(max(int(now - s), 0), model.q_wrap.shape[1] - 1) for s in wrapping]
        full = np.cumsum(poisson_binomial(np.concatenate([model.q_talk[:, ages_t], model.q_wrap[:, ages_w]], axis=1)), axis=1)
        got = oracle.supply_cdfs(snapshot, now)
        for row_full, row in zip(np.minimum(full, 1.0).tolist(), got, strict=True):
            assert len(row) <= len(row_full), trial
            assert np.abs(np.array(row) - np.array(row_full[: len(row)])).max() < 1e-12
            # Counts past the shorter law are those of agents that are never free: probability 1.
            assert all(abs(x - 1.0) < 1e-12 for x in row_full[len(row) :])


def test_the_batched_decision_gives_each_pacer_its_own_answer() -> None:
    """`decide_many` over many pacers (one gathering pass) answers what `decide` answers
    alone, risk for risk, whatever the mix of team sizes and states."""
    rng = np.random.default_rng(3)
    dialed = 0
    for _ in range(5):
        pacers = [PredictivePacer() for _ in range(7)]
        alone = [PredictivePacer() for _ in range(7)]
        snapshots = []
        now = 50_000.0
        for p, q in zip(pacers, alone, strict=True):
            seed = int(rng.integers(1 << 30))
            for pacer in (p, q):
                local = np.random.default_rng(seed)
                _trained_model(pacer.model, local)
                pacer.model.human_answers = 100
            agents = int(rng.integers(1, 120))
            busy = int(rng.integers(0, agents + 1))
            talking = tuple(now - float(rng.uniform(0, 300)) for _ in range(busy // 2))
            wrapping = tuple(now - float(rng.uniform(0, 40)) for _ in range(busy - busy // 2))
            ready = tuple(now - 1.0 for _ in range(int(rng.integers(0, 6))))
            ringing = tuple(now - float(rng.uniform(0, 20)) for _ in range(int(rng.integers(0, agents + 1))))
            snapshots.append(PacingSnapshot(ready, talking, wrapping, 0, ringing, int(rng.integers(0, 3)), int(rng.integers(0, 60))))
        together = PredictivePacer.decide_many(pacers, snapshots, now)
        one_by_one = [q.decide(s, now) for q, s in zip(alone, snapshots, strict=True)]
        assert together == one_by_one
        dialed += sum(1 for n in together if n > 0)
        for p, q in zip(pacers, alone, strict=True):
            assert abs(p.predicted_abandons - q.predicted_abandons) < 1e-12
    assert dialed >= 10  # risks were computed and compared, not only floors returned


def test_the_batched_decision_holds_across_seconds_as_pacers_and_tables_change() -> None:
    """`decide_many` second after second (it reuses the last second's layout while the
    same pacers ask and no table changed): answers equal `decide` alone when the set of
    pacers asking changes, when a pacer's tables are rebuilt, and when pacers with
    different horizons are asked together."""
    rng = np.random.default_rng(11)
    quantiles = [PredictiveConfig().horizon_quantiles] * 5 + [(0.25, 0.5, 0.75)]
    pacers = [PredictivePacer(PredictiveConfig(horizon_quantiles=q)) for q in quantiles]
    alone = [PredictivePacer(PredictiveConfig(horizon_quantiles=q)) for q in quantiles]
    for p, q in zip(pacers, alone, strict=True):
        seed = int(rng.integers(1 << 30))
        for pacer in (p, q):
            _trained_model(pacer.model, np.random.default_rng(seed))
            pacer.model.human_answers = 100
    dialed = 0
    for second in range(40):
        now = 60_000.0 + second
        if second == 20:  # new tables for one pacer (and its twin) mid-run
            for pacer in (pacers[1], alone[1]):
                pacer.model.talk.add(500.0)
                pacer.model.rebuild()
        # Mostly the same five pacers asking; some seconds a subset, some the mixed six.
        asking = list(range(6)) if second % 10 == 9 else [i for i in range(5) if second % 7 != i]
        snapshots = []
        for _ in asking:
            agents = int(rng.integers(1, 40))
            busy = int(rng.integers(0, agents + 1))
            talking = tuple(now - float(rng.uniform(0, 300)) for _ in range(busy // 2))
            wrapping = tuple(now - float(rng.uniform(0, 40)) for _ in range(busy - busy // 2))
            ready = tuple(now - 1.0 for _ in range(int(rng.integers(0, 4))))
            ringing = tuple(now - float(rng.uniform(0, 20)) for _ in range(int(rng.integers(0, agents + 1))))
            snapshots.append(PacingSnapshot(ready, talking, wrapping, 0, ringing, 0, int(rng.integers(0, 30))))
        together = PredictivePacer.decide_many([pacers[i] for i in asking], snapshots, now)
        one_by_one = [alone[i].decide(s, now) for i, s in zip(asking, snapshots, strict=True)]
        assert together == one_by_one
        dialed += sum(1 for n in together if n > 0)
    for p, q in zip(pacers, alone, strict=True):
        assert abs(p.predicted_abandons - q.predicted_abandons) < 1e-12
    assert dialed >= 20
