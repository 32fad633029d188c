"""Charts: daily occupancy and 30-day abandon per policy, and the occupancy-abandon curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dialer.simulator.engine import ReplicationResult
from dialer.simulator.metrics import replication_metrics
from dialer.simulator.scenario import Scenario


def _daily(result: ReplicationResult) -> tuple[list[float], list[float]]:
    d = result.daily
    occupancy = []
    trailing = []
    for day in range(len(d["dials"])):
        handle = d["talk_seconds"][day] + d["machine_talk_seconds"][day] + d["wrap_seconds"][day]
        available = handle + d["idle_seconds"][day]
        occupancy.append(handle / available if available else 0.0)
        start = max(0, day - 29)
        live = sum(d["live_answers"][start : day + 1])
        trailing.append(100.0 * sum(d["abandoned"][start : day + 1]) / live if live else 0.0)
    return occupancy, trailing


def plot_results(
    results: Mapping[str, Sequence[ReplicationResult]], scenario: Scenario, path: Path
) -> None:
    figure, (ax_occ, ax_ab, ax_curve) = plt.subplots(1, 3, figsize=(16, 4.5))
    for policy, runs in results.items():
        occupancy, trailing = _daily(runs[0])
        days = list(range(1, len(occupancy) + 1))
        ax_occ.plot(days, occupancy, label=policy)
        ax_ab.plot(days, trailing, label=policy)
        metrics = [replication_metrics(r) for r in runs]
        ax_curve.scatter(
            [100.0 * m.abandon_rate for m in metrics], [m.occupancy for m in metrics], label=policy, s=14
        )
    limit = 100.0 * scenario.abandon_target
    ax_occ.set(title="Occupancy per day (replication 0)", xlabel="day", ylabel="occupancy")
    # The band that matters is 0 to a little over the limit: policies far above it (40-90%)
    # would set the scale and flatten it. They are clipped at the top, and named.
    top = 2.0 * limit
    off_scale = [p for p, runs in results.items() if max(_daily(runs[0])[1]) > top]
    ax_ab.axhline(limit, color="red", linestyle="--", linewidth=1, label=f"limit {limit:g}%")
    ax_ab.set_ylim(0.0, top)
    ax_ab.set(title="Abandon %, trailing 30 days", xlabel="day", ylabel="abandon %")
    if off_scale:
        ax_ab.text(0.02, 0.97, "above the scale: " + ", ".join(off_scale), transform=ax_ab.transAxes,
                   fontsize=7, va="top")  # fmt: skip
    ax_ab.legend(fontsize=7, loc="lower right")
    ax_curve.axvline(limit, color="red", linestyle="--", linewidth=1)
    ax_curve.set(title="Occupancy vs abandon (per replication)", xlabel="abandon %", ylabel="occupancy")
    ax_curve.legend(fontsize=7)
    figure.suptitle(f"{scenario.name}: {scenario.agents} agents, p_live {scenario.p_live:g}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
