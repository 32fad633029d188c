"""Metrics over replications: productivity, abandon by the regulatory definition, and bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dialer.pacing.types import ABANDON_WINDOW_DAYS
from dialer.simulator.engine import ReplicationResult
from dialer.simulator.scenario import Scenario


@dataclass(frozen=True)
class ReplicationMetrics:
    """Headline figures of one replication."""

    occupancy: float
    talk_minutes_per_agent_hour: float
    connects_per_agent_hour: float
    dials_per_agent_hour: float
    abandon_rate: float
    max_rolling_30d_abandon_rate: float
    vicidial_drop_rate: float
    late_bridge_share: float
    live_answers: int
    abandoned: int


def window_rates(result: ReplicationResult, window: int = ABANDON_WINDOW_DAYS) -> list[float]:
    """Abandon rate of every rolling `window`-day window (47 CFR 64.1200(a)(7)).

    A run shorter than the window is one window: the TSR measures a campaign shorter than
    30 days over its whole length (16 CFR 310.4(b)(4)(i)).
    """
    answers = result.daily["live_answers"]
    abandoned = result.daily["abandoned"]
    days = len(answers)
    width = min(window, days)
    rates = []
    for start in range(days - width + 1):
        live = sum(answers[start : start + width])
        rates.append(sum(abandoned[start : start + width]) / live if live else 0.0)
    return rates


def replication_metrics(result: ReplicationResult) -> ReplicationMetrics:
    t = result.total
    handle = t("talk_seconds") + t("machine_talk_seconds") + t("wrap_seconds")
    available = handle + t("idle_seconds")  # logged in and not paused
    hours = available / 3600.0 if available else 1.0
    live = t("live_answers")
    declared = t("human_declared")
    return ReplicationMetrics(
        occupancy=handle / available if available else 0.0,
        talk_minutes_per_agent_hour=t("talk_seconds") / 60.0 / hours,
        connects_per_agent_hour=t("connects") / hours,
        dials_per_agent_hour=t("dials") / hours,
        abandon_rate=t("abandoned") / live if live else 0.0,
        max_rolling_30d_abandon_rate=max(window_rates(result)),
        vicidial_drop_rate=t("vici_drops") / declared if declared else 0.0,
        late_bridge_share=t("bridged_late") / live if live else 0.0,
        live_answers=int(live),
        abandoned=int(t("abandoned")),
    )


# Two-sided 95% quantiles of Student's t by degrees of freedom (1..30); 1.96 beyond.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (normal beyond 30)."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95% confidence interval (Student's t: few replications)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, t95(n - 1) * math.sqrt(var / n)


def normal_tail(values: Sequence[float], limit: float) -> float:
    """P(X > limit) for X normal with the sample mean and sd of `values`.

    With a handful of replications the share over the limit is 0 or 1/n; this estimate of
    P(30-day abandon > 3%) from the spread of the replications' rates is what a 1% target
    can be judged against (it assumes the 30-day rate is roughly normal, which it is for
    thousands of answers per window).
    """
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if sd <= 0.0:
        return 0.0 if mean <= limit else 1.0
    return 0.5 * math.erfc((limit - mean) / (sd * math.sqrt(2.0)))


def window_tail(results: Sequence[ReplicationResult], limit: float) -> float:
    """Estimated P(a 30-day window's abandon rate > limit), from runs of one window each.

    A normal law for the window's rate (it holds thousands of answers), centred on the
    runs' pooled rate, with the larger of two spreads: the runs' own (few of them, so
    rough) and the one their days imply (the rate's variance from the daily tallies, days
    taken as independent: exact for a fixed ratio, conservative for a pacer that makes up
    for a bad day, as ours does). Every policy is judged by the same estimate.
    """
    answers = sum(sum(r.daily["live_answers"]) for r in results)
    if not answers:
        return 0.0
    rate = sum(sum(r.daily["abandoned"]) for r in results) / answers
    variances = []
    for r in results:
        live = r.daily["live_answers"]
        total = sum(live)
        if total:
            residuals = sum((a - rate * n) ** 2 for a, n in zip(r.daily["abandoned"], live, strict=True))
            days = len(live)
            variances.append(residuals / total**2 * (days / max(days - 1, 1)))
    daily_sd = math.sqrt(sum(variances) / len(variances)) if variances else 0.0
    rates = [sum(r.daily["abandoned"]) / sum(r.daily["live_answers"]) for r in results if sum(r.daily["live_answers"])]
    between_sd = 0.0
    if len(rates) > 1:
        mean = sum(rates) / len(rates)
        between_sd = math.sqrt(sum((x - mean) ** 2 for x in rates) / (len(rates) - 1))
    sd = max(daily_sd, between_sd)
    if sd <= 0.0:
        return 0.0 if rate <= limit else 1.0
    return 0.5 * math.erfc((limit - rate) / (sd * math.sqrt(2.0)))


def summarize(results: Sequence[ReplicationResult], limit: float) -> dict[str, float | None]:
    """The CLI's JSON figures for one policy, averaged over replications."""
    per = [replication_metrics(r) for r in results]
    out: dict[str, float | None] = {}
    for key in (
        "occupancy",
        "talk_minutes_per_agent_hour",
        "connects_per_agent_hour",
        "dials_per_agent_hour",
        "vicidial_drop_rate",
        "late_bridge_share",
    ):
        mean, half = mean_ci([getattr(m, key) for m in per])
        out[key] = mean
        out[f"{key}_ci95"] = None if math.isnan(half) else half  # one replication: no interval
    live = sum(m.live_answers for m in per)
    out["abandon_rate"] = sum(m.abandoned for m in per) / live if live else 0.0
    out["max_rolling_30d_abandon_rate"] = max(m.max_rolling_30d_abandon_rate for m in per)
    out["mean_max_rolling_30d_abandon_rate"] = mean_ci([m.max_rolling_30d_abandon_rate for m in per])[0]
    # Share of replications in which any 30-day window broke the limit.
    out["p_window_over_3pct"] = sum(1 for m in per if m.max_rolling_30d_abandon_rate > limit) / len(per)
    out["est_p_window_over_limit"] = window_tail(results, limit)
    out["replications"] = len(per)
    out["live_answers"] = live
    return out


def clairvoyant_bound(scenario: Scenario) -> dict[str, float]:
    """Fluid upper bound (rules.md 5.3.1): busy every available minute, capped by supply.

    Supply of people per second <= min(calls/s, lines / mean dial duration) x p_live.
    """
    s = scenario
    talk = s.talk_seconds.expected()
    wrap = s.wrap_seconds.expected()
    ring = s.ring_seconds.expected()
    timeout = s.ring_timeout_seconds
    answered = min(ring, timeout) + 3.0
    dial_seconds = (
        (s.p_live + s.p_machine) * answered
        + s.p_busy * s.busy_seconds.expected()
        + s.p_unallocated * s.unallocated_seconds.expected()
        + s.p_no_answer * timeout
    )
    # Lines stay up while a person talks, too.
    per_dial_line_seconds = dial_seconds + s.p_live * talk
    dial_rate = min(s.calls_per_second, s.max_lines / per_dial_line_seconds)
    pause_share = s.breaks_per_day * s.break_minutes / (s.hours_per_day * 60.0)
    agents = s.agents * (1.0 - pause_share)
    supply_occupancy = dial_rate * s.p_live * (talk + wrap) / agents
    occupancy = min(1.0, supply_occupancy)
    per_hour = 3600.0 * occupancy / (talk + wrap)
    return {
        "occupancy": occupancy,
        "talk_minutes_per_agent_hour": per_hour * talk / 60.0,
        "connects_per_agent_hour": per_hour,
        "abandon_rate": 0.0,
    }
