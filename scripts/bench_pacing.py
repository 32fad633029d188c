"""Benchmark: every pacing policy on a grid of call centers, paired by common random numbers.

Prints, per scenario, each policy's occupancy and abandon side by side, the paired
occupancy difference of our predictive pacer against VICIdial's best ADAPT mode (with a
95% confidence interval), and the gap to the outcome oracle. Runs on 2 worker processes
and stops by itself; `--quick` runs a small grid in a few minutes.

    .venv/bin/python scripts/bench_pacing.py --quick
    .venv/bin/python scripts/bench_pacing.py            # full grid
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from dialer.simulator.metrics import ReplicationMetrics, mean_ci, replication_metrics
from dialer.simulator.policies import VICIDIAL_POLICIES, run_one
from dialer.simulator.scenario import Scenario, scenario_from_mapping

POLICY_ORDER = ("predictive", "progressive", "power2", "ratio2", *VICIDIAL_POLICIES, "oracle")
TALK = {
    "short": {"dist": "lognormal", "mean": 60, "sd": 40},
    "long": {
        "dist": "mixture",
        "components": [
            {"weight": 0.55, "dist": "exponential", "mean": 30},
            {"weight": 0.45, "dist": "lognormal", "mean": 300, "sd": 200},
        ],
    },
}


def make_scenario(agents: int, p_live: float, talk: str, hours: float, days: int) -> Scenario:
    return scenario_from_mapping(
        {
            "name": f"n{agents}_p{round(p_live * 100)}_{talk}",
            "agents": agents,
            "days": days,
            "hours_per_day": hours,
            "p_live": p_live,
            "p_machine": 0.20,
            "p_busy": 0.10,
            "p_unallocated": 0.08,
            "ring_seconds": {"dist": "lognormal", "mean": 9, "sd": 5},
            "ring_timeout_seconds": 20,
            "greeting_seconds": {"dist": "uniform", "low": 0.8, "high": 2.0},
            "amd_seconds": {"dist": "uniform", "low": 0.6, "high": 1.2},
            "amd_machine_seconds": {"dist": "uniform", "low": 2.5, "high": 4.0},
            "talk_seconds": TALK[talk],
            "wrap_seconds": {"dist": "exponential", "mean": 10, "shift": 20},
            "max_lines": max(20, 8 * agents),
            "calls_per_second": max(5.0, agents / 2.0),
            "breaks_per_day": 1 if hours >= 2 else 0,
            "break_minutes": 15,
        }
    )


def grid(quick: bool) -> list[tuple[Scenario, int]]:
    """(scenario, replications). Bigger teams get shorter shifts and fewer replications:
    their 30-day windows hold tens of thousands of answers, so they vary little."""
    teams: tuple[int, ...]
    lives: tuple[float, ...]
    talks: tuple[str, ...]
    if quick:
        teams, lives, talks = (5, 20), (0.12,), ("short",)
    else:
        teams, lives, talks = (3, 5, 10, 20, 50, 100), (0.05, 0.12, 0.25), ("short", "long")
    # agents: (hours per day, replications), sized for ~25 min on 2 cores.
    plan = {3: (2, 6), 5: (2, 6), 10: (2, 4), 20: (1, 4), 50: (1, 2), 100: (0.5, 2)}
    out = []
    for agents, p_live, talk in itertools.product(teams, lives, talks):
        hours, reps = plan[agents]
        if quick:
            hours, reps = 1, 3
        out.append((make_scenario(agents, p_live, talk, hours, 30), reps))
    return out


def _job(job: tuple[Scenario, str, int, int]) -> tuple[str, str, int, ReplicationMetrics]:
    scenario, policy, _seed, rep = job
    return scenario.name, policy, rep, replication_metrics(run_one(job))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, a few minutes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    scenarios = grid(args.quick)
    jobs = [(s, p, args.seed, r) for s, reps in scenarios for p in POLICY_ORDER for r in range(reps)]
    # Longest jobs first so the two workers finish together.
    jobs.sort(key=lambda j: -j[0].agents * j[0].hours_per_day)
    results: dict[tuple[str, str], dict[int, ReplicationMetrics]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name, policy, rep, metrics in pool.map(_job, jobs, chunksize=1):
            results.setdefault((name, policy), {})[rep] = metrics
    print(f"# {len(jobs)} simulations in {time.monotonic() - started:.0f} s on {args.workers} workers")
    print("# occ = occupancy; ab = abandon % over all days; max30 = worst 30-day window %;")
    print("# P>3 = share of replications with a 30-day window over 3%; Δ = predictive minus best VICIdial")
    header = "scenario          " + "".join(f"{p[:12]:>22}" for p in POLICY_ORDER)
    print(header)
    summary_rows: list[dict[str, Any]] = []
    for scenario, reps in scenarios:
        cells = []
        row: dict[str, Any] = {"name": scenario.name, "agents": scenario.agents}
        for policy in POLICY_ORDER:
            per = results[(scenario.name, policy)]
            occ = mean_ci([per[r].occupancy for r in range(reps)])[0]
            live = sum(per[r].live_answers for r in range(reps))
            ab = sum(per[r].abandoned for r in range(reps)) / live if live else 0.0
            over = sum(1 for r in range(reps) if per[r].max_rolling_30d_abandon_rate > 0.03) / reps
            row[policy] = (occ, ab, over)
            cells.append(f"{occ:5.3f}/{100 * ab:4.2f}%/{over:3.1f}")
        print(f"{scenario.name:18s}" + "".join(f"{c:>22}" for c in cells))
        # VICIdial's best mode: the highest occupancy among modes within the limit; when
        # none is, the one with the lowest abandon rate (the fairest comparison left).
        within = [v for v in VICIDIAL_POLICIES if row[v][2] == 0.0]
        if within:
            best = max(within, key=lambda v: row[v][0])
        else:
            best = min(VICIDIAL_POLICIES, key=lambda v: row[v][1])
        diffs = [
            results[(scenario.name, "predictive")][r].occupancy - results[(scenario.name, best)][r].occupancy
            for r in range(reps)
        ]
        row["best_vici"], row["diff"], row["within"] = best, mean_ci(diffs), bool(within)
        summary_rows.append(row)
    print()
    print(f"{'scenario':18s} {'best VICIdial':>16} {'Δocc vs VICI (95% CI)':>24} {'vici ok':>8} "
          f"{'pred P>3':>9} {'gap to oracle':>14}")  # fmt: skip
    for row in summary_rows:
        mean, half = row["diff"]
        oracle_occ = row["oracle"][0]
        gap = (oracle_occ - row["predictive"][0]) / oracle_occ if oracle_occ else 0.0
        print(
            f"{row['name']:18s} {row['best_vici']:>16} {mean:+8.3f} ± {half:6.3f}{'':7} "
            f"{'yes' if row['within'] else 'no':>8} {row['predictive'][2]:9.2f} {100 * gap:13.1f}%"
        )
    print(f"# total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
