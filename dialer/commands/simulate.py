"""`dialer simulate`: run a scenario file under one or more pacing policies and print JSON."""

from __future__ import annotations

import argparse
import json
import sys
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
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default output)")
    parser.add_argument("--plot", type=Path, help="write occupancy/abandon charts to this PNG file")
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
    results = run_policies(scenario, policies, args.replications, args.seed, args.workers)
    summaries = {p: summarize(r, scenario.abandon_target) for p, r in results.items()}
    if len(policies) == 1:
        output: dict[str, object] = {"scenario": scenario.name, "policy": policies[0], **summaries[policies[0]]}
    else:
        output = {"scenario": scenario.name, "policies": summaries}
    output["clairvoyant_bound"] = clairvoyant_bound(scenario)
    if args.plot is not None:
        from dialer.simulator.plot import plot_results

        try:
            plot_results(results, scenario, args.plot)
        except OSError as error:
            raise UserError(f"cannot write plot {args.plot}: {error.strerror}") from error
    json.dump(output, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0
