"""`dialer simulate`: run a scenario file under one or more pacing policies; a table, or JSON."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a call center under a pacing policy",
        description="Simulate a scenario file (YAML or JSON, see docs/pacing.md) under a pacing policy.",
    )
    parser.add_argument("--scenario", required=True, type=Path, help="scenario file (.yaml or .json)")
    parser.add_argument(
        "--policy",
        required=True,
        help="policy name, or several separated by commas (predictive, progressive, preview, power2, "
        "power3, ratio2, vici_hard_limit, vici_tapered, vici_average, oracle)",
    )
    parser.add_argument("--replications", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="processes to use")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--plot", type=Path, help="write occupancy/abandon charts to this PNG file (needs the 'plot' extra)"
    )
    parser.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    # Imported here: the simulator (numpy, yaml) loads only for this command.
    from dialer.cli import UserError
    from dialer.simulator.metrics import clairvoyant_bound, summarize
    from dialer.simulator.policies import POLICIES, run_policies
    from dialer.simulator.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        raise UserError(f"invalid scenario {args.scenario}: {error}") from error
    policies = [p.strip() for p in str(args.policy).split(",") if p.strip()]
    for policy in policies:
        if policy not in POLICIES:
            raise UserError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    if not policies:
        raise UserError("--policy needs at least one policy name")
    if args.replications < 1:
        raise UserError("--replications must be at least 1")
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.seed < 0:  # was numpy's traceback, after the scenario was read
        raise UserError(f"--seed must be 0 or more, not {args.seed}")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise UserError("--plot needs matplotlib, an optional extra: pip install -e '.[plot]'")
    if args.plot is not None and (args.plot.is_dir() or not args.plot.parent.is_dir()):
        # Found before the simulation, not after its minutes of work.
        raise UserError(f"cannot write plot {args.plot}: give a PNG file in an existing directory")
    results = run_policies(scenario, policies, args.replications, args.seed, args.workers)
    summaries = {p: summarize(r, scenario.abandon_target) for p, r in results.items()}
    bound = clairvoyant_bound(scenario)
    if args.plot is not None:
        from dialer.simulator.plot import plot_results

        try:
            plot_results(results, scenario, args.plot)
        except OSError as error:
            raise UserError(f"cannot write plot {args.plot}: {error.strerror}") from error
    if args.json:
        if len(policies) == 1:
            output: dict[str, object] = {"scenario": scenario.name, "policy": policies[0], **summaries[policies[0]]}
        else:
            output = {"scenario": scenario.name, "policies": summaries}
        output["clairvoyant_bound"] = bound
        # allow_nan=False: a figure that is not a number must fail here, not in the reader's parser.
        json.dump(output, sys.stdout, indent=2, sort_keys=True, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_table(scenario.name, args, summaries, bound))
    return 0


def _table(name: str, args: argparse.Namespace, summaries: Mapping[str, Mapping[str, float | None]],
           bound: Mapping[str, float]) -> str:  # fmt: skip
    """The figures a person reads first, one policy a line."""

    def pm(value: float | None, half: float | None, digits: int) -> str:
        if value is None:
            return "-"
        return f"{value:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")

    lines = [
        f"{name}: {args.replications} replication(s), seed {args.seed}; occupancy ± 95% CI over replications,",
        "abandon % by the regulatory 2-second definition (47 CFR 64.1200(a)(7)).",
        f"{'policy':16s} {'occupancy':>16} {'talk min/h':>11} {'connects/h':>11} {'dials/h':>9} "
        f"{'abandon':>8} {'worst 30-d':>10} {'runs > limit':>12} {'est P > limit':>13}",
    ]
    for policy, s in summaries.items():
        runs = s["p_window_over_3pct"] or 0.0
        replications = s["replications"] or 0.0
        lines.append(
            f"{policy:16s} {pm(s['occupancy'], s['occupancy_ci95'], 3):>16} "
            f"{pm(s['talk_minutes_per_agent_hour'], None, 1):>11} {pm(s['connects_per_agent_hour'], None, 1):>11} "
            f"{pm(s['dials_per_agent_hour'], None, 0):>9} {100 * (s['abandon_rate'] or 0.0):7.2f}% "
            f"{100 * (s['max_rolling_30d_abandon_rate'] or 0.0):9.2f}% "
            f"{round(runs * replications):>5d} of {round(replications):<4d} {s['est_p_window_over_limit'] or 0.0:13.3f}"
        )
    lines.append(
        f"{'fluid bound':16s} {bound['occupancy']:16.3f} {bound['talk_minutes_per_agent_hour']:11.1f} "
        f"{bound['connects_per_agent_hour']:11.1f}   (agents busy every available minute, capped by supply)"
    )
    return "\n".join(lines) + "\n"
