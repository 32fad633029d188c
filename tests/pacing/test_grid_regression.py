"""The simulator's speed work changes how fast a grid runs, never what it finds.

A small grid (small and large teams, a scenario without slack after AMD; our pacer, the
outcome oracle, VICIdial's ADAPT modes as shipped, a RATIO level, and the tuned-VICIdial
search) is run the way `scripts/bench_pacing.py` runs it (scenarios of a shift length and
their replications side by side), and every day's counters must equal the figures stored
in `data/grid_regression.json`, to the last bit. The figures were written by the code
before the speed work (commit 1032dac); regenerate them only for a deliberate change of
results:

    .venv/bin/python -m tests.pacing.test_grid_regression --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dialer.simulator.engine import Simulation, run_together
from dialer.simulator.policies import POLICIES
from dialer.simulator.scenario import Scenario, scenario_from_mapping
from dialer.simulator.tuning import tune_vicidial

pytestmark = pytest.mark.timeout(600)

STORED = Path(__file__).parent / "data" / "grid_regression.json"
SEED = 7
REPLICATIONS = (0, 1)
GRID_POLICIES = ("predictive", "oracle", "vici_hard_limit", "vici_average", "vici_tapered", "ratio2")


def _scenario(agents: int, p_live: float, talk: str, hours: float, slack: float | None = None) -> Scenario:
    talks: dict[str, Any] = {
        "short": {"dist": "lognormal", "mean": 60, "sd": 40},
        "long": {"dist": "mixture", "components": [
            {"weight": 0.55, "dist": "exponential", "mean": 30},
            {"weight": 0.45, "dist": "lognormal", "mean": 300, "sd": 200},
        ]},
    }  # fmt: skip
    raw: dict[str, Any] = {
        "name": f"n{agents}_p{round(p_live * 100)}_{talk}" + ("" if slack is None else f"_slack{slack:g}"),
        "agents": agents, "days": 3, "hours_per_day": hours, "p_live": p_live, "p_machine": 0.2,
        "p_busy": 0.1, "p_unallocated": 0.08, "ring_seconds": {"dist": "lognormal", "mean": 9, "sd": 5},
        "ring_timeout_seconds": 20, "greeting_seconds": {"dist": "uniform", "low": 0.8, "high": 2.0},
        "amd_seconds": {"dist": "uniform", "low": 0.6, "high": 1.2},
        "amd_machine_seconds": {"dist": "uniform", "low": 2.5, "high": 4.0},
        "talk_seconds": talks[talk], "wrap_seconds": {"dist": "exponential", "mean": 10, "shift": 20},
        "max_lines": max(20, 8 * agents), "calls_per_second": max(5.0, agents / 2.0),
        "breaks_per_day": 1, "break_minutes": 3, "amd_human_error": 0.01,
    }  # fmt: skip
    if slack is not None:
        raw["deadline_slack_seconds"] = slack
    return scenario_from_mapping(raw)


def grid() -> list[Scenario]:
    return [
        _scenario(3, 0.12, "short", 1.0),
        _scenario(5, 0.12, "short", 1.0, slack=0.0),
        _scenario(20, 0.05, "long", 0.25),
        _scenario(60, 0.25, "short", 0.25),
    ]


def compute() -> dict[str, Any]:
    """Every policy's daily counters per scenario and replication, and the tuning's choice."""
    scenarios = grid()
    out: dict[str, Any] = {}
    for policy in GRID_POLICIES:
        for hours in sorted({s.hours_per_day for s in scenarios}):
            group = [s for s in scenarios if s.hours_per_day == hours]
            sims = [Simulation(s, POLICIES[policy](s), SEED, r) for s in group for r in REPLICATIONS]
            for sim, result in zip(sims, run_together(sims), strict=True):
                out.setdefault(policy, {}).setdefault(sim.s.name, {})[str(sim.replication)] = result.daily
    tuning = tune_vicidial(scenarios[0], SEED + 1000, 2)
    out["tuned"] = {
        "setting": [tuning.chosen.setting.family, tuning.chosen.setting.value],
        "fallback": tuning.fallback,
        "tried": [[c.setting.family, c.setting.value, [r.daily for r in c.runs]] for c in tuning.tried],
    }
    return out


def test_a_small_grid_gives_the_stored_figures_exactly() -> None:
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    got = json.loads(json.dumps(compute()))  # the same JSON round trip as the stored file
    for policy, by_scenario in stored.items():
        if policy == "tuned":
            continue
        for name, by_replication in by_scenario.items():
            for replication, daily in by_replication.items():
                assert got[policy][name][replication] == daily, (policy, name, replication)
    assert got["tuned"] == stored["tuned"]
    assert got == stored


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m tests.pacing.test_grid_regression --write")
    STORED.write_text(json.dumps(compute(), sort_keys=True) + "\n", encoding="utf-8")
