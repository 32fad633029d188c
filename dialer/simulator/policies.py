"""Policy names the CLI and the benchmark accept, and how to run them over replications."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence

from dialer.pacing import (
    AdaptMode,
    FixedRatioPacer,
    Pacer,
    PowerPacer,
    PredictiveConfig,
    PredictivePacer,
    PreviewPacer,
    ProgressivePacer,
    VicidialAdaptivePacer,
    VicidialParams,
)
from dialer.simulator.engine import ReplicationResult, simulate
from dialer.simulator.oracle import OutcomeOraclePacer
from dialer.simulator.scenario import Scenario


def pacer_config(s: Scenario) -> PredictiveConfig:
    """Our pacer as a campaign would configure it for this scenario: its abandon limit and
    the slack AMD leaves before the 2-s deadline (1 s unless the scenario says)."""
    if s.deadline_slack_seconds is None:
        return PredictiveConfig(abandon_limit=s.abandon_target)
    return PredictiveConfig(abandon_limit=s.abandon_target, deadline_slack_seconds=s.deadline_slack_seconds)


def _predictive(s: Scenario) -> Pacer:
    return PredictivePacer(pacer_config(s))


POLICIES: dict[str, Callable[[Scenario], Pacer]] = {
    "predictive": _predictive,
    "progressive": lambda s: ProgressivePacer(),
    "preview": lambda s: PreviewPacer(),
    "power2": lambda s: PowerPacer(2.0),
    "power3": lambda s: PowerPacer(3.0),
    "ratio2": lambda s: FixedRatioPacer(2.0),
    "vici_hard_limit": lambda s: VicidialAdaptivePacer(VicidialParams(mode=AdaptMode.HARD_LIMIT)),
    "vici_tapered": lambda s: VicidialAdaptivePacer(VicidialParams(mode=AdaptMode.TAPERED)),
    "vici_average": lambda s: VicidialAdaptivePacer(VicidialParams(mode=AdaptMode.AVERAGE)),
    "oracle": lambda s: OutcomeOraclePacer(pacer_config(s)),
}

VICIDIAL_POLICIES = ("vici_hard_limit", "vici_tapered", "vici_average")


def run_one(job: tuple[Scenario, str, int, int]) -> ReplicationResult:
    scenario, policy, seed, replication = job
    return simulate(scenario, POLICIES[policy](scenario), seed, replication)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_policies(
    scenario: Scenario, policies: Sequence[str], replications: int, seed: int, workers: int = 1
) -> dict[str, list[ReplicationResult]]:
    """Every policy on the same replications (same seeds: paired comparisons)."""
    jobs = [(scenario, p, seed, r) for p in policies for r in range(replications)]
    if workers > 1:
        # A pool that can be stopped: on Ctrl-C the workers are terminated at once (a
        # ProcessPoolExecutor ran every replication already queued to the end first, minutes),
        # and they ignore SIGINT themselves, so the terminal's Ctrl-C prints no worker tracebacks.
        pool = multiprocessing.get_context().Pool(workers, initializer=_ignore_sigint)
        try:
            results = pool.map(run_one, jobs, chunksize=1)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    else:
        results = [run_one(job) for job in jobs]
    out: dict[str, list[ReplicationResult]] = {p: [] for p in policies}
    for (_, policy, _, _), result in zip(jobs, results, strict=True):
        out[policy].append(result)
    return out
