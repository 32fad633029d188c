"""The tuned VICIdial baseline: the search never keeps a setting that breaks the limit on its
calibration seeds, and keeps the most aggressive one that holds it."""

from __future__ import annotations

from typing import Any

import pytest

from dialer.pacing import AdaptMode, Pacer, VicidialParams
from dialer.pacing.vicidial import clamp_is_idle
from dialer.simulator.engine import ReplicationResult, Simulation, simulate
from dialer.simulator.metrics import replication_metrics, window_tail
from dialer.simulator.scenario import Scenario, scenario_from_mapping
from dialer.simulator.tuning import RATIO_LEVELS, VicidialSetting, calibrate, tune_vicidial

pytestmark = pytest.mark.timeout(120)


def _fake_run(abandon_per_level: dict[str, float], days: int = 30) -> Any:
    """A runner whose abandon rate is a fixed function of the setting (no simulation)."""

    def run(scenario: Scenario, pacer: Pacer, seed: int, replication: int) -> ReplicationResult:
        rate = abandon_per_level[pacer.name]
        live = [1000.0] * days
        daily = {
            "live_answers": live,
            "abandoned": [rate * 1000.0] * days,
            "talk_seconds": [rate * 3600.0] * days,  # occupancy grows with aggressiveness
            "machine_talk_seconds": [0.0] * days,
            "wrap_seconds": [0.0] * days,
            "idle_seconds": [(1.0 - rate) * 3600.0] * days,
            "connects": live, "dials": live, "human_declared": live, "vici_drops": [0.0] * days,
            "bridged_late": [0.0] * days,
        }  # fmt: skip
        return ReplicationResult(pacer.name, replication, daily)

    return run


def test_the_search_keeps_the_most_aggressive_ratio_that_holds_the_limit() -> None:
    # RATIO levels up to 1.8 run at 2.9% or less, from 1.9 on at 3.2% or more.
    rates = {f"ratio{level:g}": (0.010 + 0.01 * level if level <= 1.8 else 0.032) for level in RATIO_LEVELS}
    rates.update({f"vici_{mode}": 0.05 for mode in ("hard_limit", "average", "tapered")})
    tuning = tune_vicidial(_scenario(), seed=1, run=_fake_run(rates))
    assert tuning.chosen.setting == VicidialSetting("ratio", 1.8)
    assert not tuning.fallback
    # Every setting tried and found over the limit was more aggressive than the one kept.
    for calibration in tuning.tried:
        if calibration.setting.family == "ratio" and not calibration.feasible:
            assert calibration.setting.value > 1.8
            assert len(calibration.runs) == 1  # stopped at its first window over 3%


def test_nothing_holds_the_limit_then_the_least_aggressive_ratio_is_kept_and_flagged() -> None:
    rates = {f"ratio{level:g}": 0.04 for level in RATIO_LEVELS}
    rates.update({f"vici_{mode}": 0.05 for mode in ("hard_limit", "average", "tapered")})
    tuning = tune_vicidial(_scenario(), seed=1, run=_fake_run(rates))
    assert tuning.fallback and tuning.chosen.setting == VicidialSetting("ratio", 1.0)


def _scenario(**overrides: Any) -> Scenario:
    raw: dict[str, Any] = {
        "agents": 6, "days": 12, "hours_per_day": 0.5, "p_live": 0.12, "p_machine": 0.2, "p_busy": 0.1,
        "p_unallocated": 0.08, "ring_seconds": {"dist": "lognormal", "mean": 9, "sd": 5},
        "ring_timeout_seconds": 20, "greeting_seconds": {"dist": "uniform", "low": 0.8, "high": 2.0},
        "amd_seconds": {"dist": "uniform", "low": 0.6, "high": 1.2},
        "talk_seconds": {"dist": "lognormal", "mean": 60, "sd": 40},
        "wrap_seconds": {"dist": "exponential", "mean": 10, "shift": 20}, "max_lines": 48,
        "calls_per_second": 5, "breaks_per_day": 0,
    }  # fmt: skip
    raw.update(overrides)
    return scenario_from_mapping(raw)


def test_the_search_never_picks_a_setting_that_breaks_the_limit_on_its_calibration_seeds() -> None:
    scenario = _scenario()
    tuning = tune_vicidial(scenario, seed=21, replications=2, families=("ratio", "hard_limit"))
    chosen = tuning.chosen
    assert chosen.feasible
    assert len(chosen.runs) == 2
    for run in chosen.runs:  # each run is one window (shorter than 30 days: the whole run)
        assert replication_metrics(run).max_rolling_30d_abandon_rate <= 0.03
    assert window_tail(chosen.runs, 0.03) <= 0.01
    # Run again, the chosen setting gives the same calibration figures (common random numbers).
    again = calibrate(scenario, chosen.setting, 21, 2, limit=0.03, max_tail=0.01)
    assert again.windows == chosen.windows
    # Everything kept feasible is no more aggressive, in its family, than one found infeasible.
    for family in ("ratio", "hard_limit"):
        tried = [c for c in tuning.tried if c.setting.family == family]
        worst_ok = max((c.setting.value for c in tried if c.feasible), default=None)
        best_bad = min((c.setting.value for c in tried if not c.feasible), default=None)
        if worst_ok is not None and best_bad is not None:
            assert worst_ok < best_bad


def test_reused_adapt_runs_are_the_runs_a_simulation_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    # The search reuses an ADAPT run whose drop clamp changed nothing for every other mode
    # and target whose clamp would change nothing along it: the same figures as running them.
    scenario = _scenario(agents=20, p_live=0.05, max_lines=160, calls_per_second=10, days=4)
    simulated: list[str] = []

    def run_every_time(s: Scenario, pacer: Pacer, seed: int, replication: int) -> ReplicationResult:
        return simulate(s, pacer, seed, replication)

    counted = Simulation.run

    def count(sim: Simulation) -> ReplicationResult:
        simulated.append(sim.pacer.name)
        return counted(sim)

    monkeypatch.setattr(Simulation, "run", count)
    families = ("hard_limit", "average", "tapered")
    reused = tune_vicidial(scenario, seed=5, replications=2, families=families)
    simulated_with_reuse = len(simulated)
    fresh = tune_vicidial(scenario, seed=5, replications=2, families=families, run=run_every_time)
    assert [c.setting for c in reused.tried] == [c.setting for c in fresh.tried]
    for a, b in zip(reused.tried, fresh.tried, strict=True):
        assert [(r.policy, r.replication, r.daily) for r in a.runs] == [
            (r.policy, r.replication, r.daily) for r in b.runs
        ]
    assert reused.chosen.setting == fresh.chosen.setting
    runs = sum(len(c.runs) for c in fresh.tried)
    assert len(simulated) - simulated_with_reuse == runs  # without reuse, every run simulated
    assert simulated_with_reuse < runs  # this scenario has runs to reuse (14 of 24 simulated)


def test_a_clamp_that_acted_is_not_idle_for_a_lower_target() -> None:
    # A day at 2% drops: a 1% target's clamp acts (HARD_LIMIT sets 1.0), a 3% one does not;
    # at level 1.0 no clamp changes anything; TAPERED before 11:00 never does.
    inputs = [(2.0, 1.8, 930)]
    assert not clamp_is_idle(inputs, VicidialParams(mode=AdaptMode.HARD_LIMIT, dropped_percentage=1.0))
    assert clamp_is_idle(inputs, VicidialParams(mode=AdaptMode.HARD_LIMIT, dropped_percentage=3.0))
    assert clamp_is_idle([(2.0, 1.0, 930)], VicidialParams(mode=AdaptMode.AVERAGE, dropped_percentage=1.0))
    assert clamp_is_idle(inputs, VicidialParams(mode=AdaptMode.TAPERED, dropped_percentage=0.25))
    assert not clamp_is_idle([(2.0, 1.8, 1430)], VicidialParams(mode=AdaptMode.TAPERED, dropped_percentage=0.25))
