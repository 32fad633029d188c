"""Prometheus metrics at `/metrics` (docs/decisions.md, decision 10), kept and exposed by
`prometheus_client` in a registry of the dialer's own (so two dialers in one process, as in
the tests, do not mix their figures).

Gauges are read from the components when scraped (outbox backlog, live calls, campaign
status: `collectors` refresh them); counters and histograms are fed by the components' hooks.
Only aggregates are exposed: no phone numbers, names or ids of leads (they are PHI/PII).

Counters and gauges take their labels at each use (`metric.inc(outcome="busy")`), as the
components report them; the label names are fixed by the first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

# `_created` series double every counter for no use of ours.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds: a gate decision is about a millisecond; an originate tens of milliseconds; a person
# must reach an agent within 2 s of the greeting (47 CFR 64.1200(a)(7)); speed-to-lead in seconds.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
LEAD_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class Family:
    """A counter or gauge whose label names are fixed at its first use."""

    def __init__(self, registry: CollectorRegistry, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self._registry = registry
        self._metric: MetricWrapperBase | None = None
        self._labels: tuple[str, ...] = ()
        self.seen: set[tuple[tuple[str, str], ...]] = set()

    def _child(self, labels: Mapping[str, str]) -> Any:
        names = tuple(sorted(labels))
        if self._metric is None:
            kind = Counter if self.kind == "counter" else Gauge
            self._metric = kind(self.name, self.help, labelnames=names, registry=self._registry)
            self._labels = names
        elif names != self._labels:
            raise ValueError(f"{self.name} takes labels {self._labels}, not {names}")
        self.seen.add(tuple(sorted(labels.items())))
        return self._metric.labels(**labels) if names else self._metric

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._child(labels).inc(amount)

    def set(self, value: float, **labels: str) -> None:
        if self.kind != "gauge":
            raise ValueError(f"{self.name} is a counter: it only goes up")
        self._child(labels).set(value)

    def value(self, **labels: str) -> float:
        """The current value (0 before any use): for tests and the CLI."""
        if self._metric is None:
            return 0.0
        sample = self._registry.get_sample_value(self.name, dict(labels) or None)
        return float(sample or 0.0)


class Metrics:
    """The dialer's registry: named counters and gauges, the latency histograms, the process's
    own figures (CPU, memory, file descriptors, garbage collection), and the `collectors` that
    refresh gauges right before each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.PlatformCollector(registry=self.registry)
        prometheus_client.GCCollector(registry=self.registry)
        self._families: dict[str, Family] = {}
        self.collectors: list[Callable[[Metrics], None]] = []
        self.gate_decision_seconds = self.histogram(
            "dialer_gate_decision_seconds", "Time of one call of the compliance gate (a decision or a batch)",
            FAST_BUCKETS, ("batch",))
        self.originate_seconds = self.histogram(
            "dialer_originate_seconds", "Time Asterisk takes to accept an originate or a dial (ARI request)",
            FAST_BUCKETS, ("request",))
        self.answer_to_bridge_seconds = self.histogram(
            "dialer_answer_to_bridge_seconds", "From the lead's answer to the lead joining the agent's bridge",
            CALL_BUCKETS, ("kind",))
        self.speed_to_lead_seconds = self.histogram(
            "dialer_speed_to_lead_seconds", "From a web lead's arrival to its first dial", LEAD_BUCKETS, ())
        self.webhook_lag_seconds = self.histogram(
            "dialer_webhook_delivery_lag_seconds", "From an event's occurrence to its delivery to a webhook endpoint",
            LEAD_BUCKETS, ("event_type",))
        self.webhook_attempts = self.counter(
            "dialer_webhook_attempts_total", "Webhook delivery attempts by result (delivered, retry, parked)")

    def histogram(self, name: str, help_text: str, buckets: Sequence[float], labels: Iterable[str]) -> Histogram:
        return Histogram(name, help_text, labelnames=tuple(labels), buckets=tuple(buckets), registry=self.registry)

    def metric(self, name: str, kind: str, help_text: str) -> Family:
        existing = self._families.get(name)
        if existing is None:
            existing = self._families[name] = Family(self.registry, name, kind, help_text)
        return existing

    def counter(self, name: str, help_text: str) -> Family:
        return self.metric(name, "counter", help_text)

    def gauge(self, name: str, help_text: str) -> Family:
        return self.metric(name, "gauge", help_text)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type, collectors run first."""
        for collect in self.collectors:
            collect(self)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def render(self) -> str:
        return self.exposition()[0].decode()


def set_all(metric: Family, values: Mapping[str, float], label: str, **fixed: str) -> None:
    """Replace a labelled gauge's values (labels that disappeared go to zero)."""
    for labels in list(metric.seen):
        found = dict(labels)
        if found.items() >= fixed.items() and label in found:
            metric.set(0, **found)
    for key, value in values.items():
        metric.set(value, **{label: key}, **fixed)
