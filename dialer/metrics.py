"""Prometheus metrics at `/metrics` (docs/decisions.md, decision 10), in the text exposition format.

Gauges are read from the components when scraped (outbox backlog, live calls, campaign
status); counters are kept here and bumped by the components' hooks. Only aggregates are
exposed: no phone numbers, names or ids of leads (they are PHI/PII).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels) + "}"


@dataclass
class Metric:
    name: str
    kind: str  # counter | gauge
    help: str
    values: Counter[Labels] = field(default_factory=Counter)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount  # type: ignore[assignment]

    def set(self, value: float, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] = value  # type: ignore[assignment]

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {float(value):g}"


class Metrics:
    """A small registry; `collectors` refresh gauges right before each scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self.collectors: list[Callable[[Metrics], None]] = []

    def metric(self, name: str, kind: str, help_text: str) -> Metric:
        existing = self._metrics.get(name)
        if existing is None:
            existing = self._metrics[name] = Metric(name, kind, help_text)
        return existing

    def counter(self, name: str, help_text: str) -> Metric:
        return self.metric(name, "counter", help_text)

    def gauge(self, name: str, help_text: str) -> Metric:
        return self.metric(name, "gauge", help_text)

    def render(self) -> str:
        for collect in self.collectors:
            collect(self)
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


def set_all(metric: Metric, values: Mapping[str, float], label: str, **fixed: str) -> None:
    """Replace a labelled gauge's values (labels that disappeared go to zero)."""
    for labels in list(metric.values):
        if dict(labels).items() >= fixed.items():
            metric.values[labels] = 0
    for key, value in values.items():
        metric.set(value, **{label: key}, **fixed)
