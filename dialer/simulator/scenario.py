"""Scenario files (YAML or JSON): the call center a simulation runs, validated field by field.

Every error names the field at fault (`ScenarioError("talk_seconds.mean must be > 0")`),
so the CLI can print one sentence. See docs/pacing.md for the format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class ScenarioError(ValueError):
    """The scenario cannot be simulated; the message names the field."""


DIST_KINDS = ("constant", "uniform", "exponential", "lognormal", "gamma", "mixture")


@dataclass(frozen=True)
class Distribution:
    """A non-negative duration in seconds.

    kinds: constant(value), uniform(low, high), exponential(mean), lognormal(mean, sd),
    gamma(mean, sd), mixture(components=[{weight, <distribution>}, ...]); any kind may add
    `shift` (added) and `max` (values above are clipped). A bare number means constant.
    """

    kind: str
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    sd: float = 0.0
    shift: float = 0.0
    max: float = math.inf
    weights: tuple[float, ...] = ()
    components: tuple[Distribution, ...] = ()

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        if self.kind == "constant":
            out: FloatArray = np.full(size, self.value)
        elif self.kind == "uniform":
            out = rng.uniform(self.low, self.high, size)
        elif self.kind == "exponential":
            out = rng.exponential(self.mean, size)
        elif self.kind == "lognormal":
            sigma2 = math.log(1.0 + (self.sd / self.mean) ** 2)
            mu = math.log(self.mean) - sigma2 / 2.0
            out = rng.lognormal(mu, math.sqrt(sigma2), size)
        elif self.kind == "gamma":
            shape = (self.mean / self.sd) ** 2
            out = rng.gamma(shape, self.mean / shape, size)
        else:
            picks = rng.choice(len(self.components), size=size, p=np.asarray(self.weights))
            out = np.zeros(size)
            for i, component in enumerate(self.components):
                mask = picks == i
                out[mask] = component.sample(rng, int(mask.sum()))
        out = out + self.shift
        return np.minimum(np.maximum(out, 0.0), self.max)

    def expected(self) -> float:
        """Mean by a fixed-seed Monte Carlo (exact enough for bounds; handles clipping)."""
        return float(self.sample(np.random.default_rng(12345), 200_000).mean())


def _number(raw: object, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ScenarioError(f"{name} must be a number, got {raw!r}")
    value = float(raw)
    if positive and value <= 0:
        raise ScenarioError(f"{name} must be > 0, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{name} must be >= {minimum:g}, got {raw!r}")
    return value


def _integer(raw: object, name: str, *, minimum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ScenarioError(f"{name} must be an integer, got {raw!r}")
    if raw < minimum:
        raise ScenarioError(f"{name} must be >= {minimum}, got {raw!r}")
    return raw


def _probability(raw: object, name: str) -> float:
    value = _number(raw, name, minimum=0.0)
    if value > 1.0:
        raise ScenarioError(f"{name} must be a probability between 0 and 1, got {raw!r}")
    return value


def parse_distribution(raw: object, name: str) -> Distribution:
    """Parse one distribution spec; errors name `name` (e.g. `talk_seconds.sd`)."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return Distribution(kind="constant", value=_number(raw, name, minimum=0.0))
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{name} must be a number or a mapping with 'dist', got {raw!r}")
    kind = raw.get("dist")
    if kind not in DIST_KINDS:
        raise ScenarioError(f"{name}.dist must be one of {', '.join(DIST_KINDS)}, got {kind!r}")
    known = {"dist", "value", "low", "high", "mean", "sd", "shift", "max", "components", "weight"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ScenarioError(f"{name}.{unknown[0]} is not a distribution field")
    extra: dict[str, Any] = {}
    if "shift" in raw:
        extra["shift"] = _number(raw["shift"], f"{name}.shift", minimum=0.0)
    if "max" in raw:
        extra["max"] = _number(raw["max"], f"{name}.max", positive=True)

    def need(key: str, positive: bool = True) -> float:
        if key not in raw:
            raise ScenarioError(f"{name}.{key} is required for dist {kind}")
        return _number(raw[key], f"{name}.{key}", minimum=0.0, positive=positive)

    if kind == "constant":
        return Distribution(kind=kind, value=need("value", positive=False), **extra)
    if kind == "uniform":
        low, high = need("low", positive=False), need("high", positive=False)
        if high < low:
            raise ScenarioError(f"{name}.high must be >= {name}.low")
        return Distribution(kind=kind, low=low, high=high, **extra)
    if kind == "exponential":
        return Distribution(kind=kind, mean=need("mean"), **extra)
    if kind in ("lognormal", "gamma"):
        return Distribution(kind=kind, mean=need("mean"), sd=need("sd"), **extra)
    components = raw.get("components")
    if not isinstance(components, list) or not components:
        raise ScenarioError(f"{name}.components must be a non-empty list")
    weights = []
    parsed = []
    for i, component in enumerate(components):
        label = f"{name}.components[{i}]"
        if not isinstance(component, Mapping) or "weight" not in component:
            raise ScenarioError(f"{label}.weight is required")
        weights.append(_number(component["weight"], f"{label}.weight", positive=True))
        parsed.append(parse_distribution({k: v for k, v in component.items() if k != "weight"}, label))
    total = sum(weights)
    return Distribution(
        kind=kind, weights=tuple(w / total for w in weights), components=tuple(parsed), **extra
    )


def _const(value: float) -> Distribution:
    return Distribution(kind="constant", value=value)


@dataclass(frozen=True)
class Scenario:
    """One simulated campaign. Times in seconds unless the name says otherwise."""

    agents: int
    days: int
    hours_per_day: float
    p_live: float
    p_machine: float
    p_busy: float
    p_unallocated: float
    ring_seconds: Distribution
    talk_seconds: Distribution
    wrap_seconds: Distribution
    greeting_seconds: Distribution
    amd_seconds: Distribution  # AMD's decision delay after a person's greeting ends
    ring_timeout_seconds: float
    max_lines: int
    abandon_target: float = 0.03
    name: str = "scenario"
    shift_start_hour: float = 9.0
    calls_per_second: float = 10.0
    amd_machine_seconds: Distribution = field(default_factory=lambda: _const(3.5))
    amd_human_error: float = 0.0  # people taken for machines: hung up, so abandoned (unseen)
    amd_machine_error: float = 0.05  # machines taken for people: sent to an agent
    machine_talk_seconds: Distribution = field(default_factory=lambda: _const(8.0))
    busy_seconds: Distribution = field(default_factory=lambda: _const(4.0))
    unallocated_seconds: Distribution = field(default_factory=lambda: _const(2.0))
    drop_call_seconds: float = 5.0  # VICIdial default: wait after AMD before the safe-harbor message
    lead_list_size: int = 0  # 0 = unlimited
    login_spread_minutes: float = 5.0
    breaks_per_day: int = 2
    break_minutes: float = 15.0
    # Seconds a person may wait after AMD declares them before the 2-s deadline passes
    # (47 CFR 64.1200(a)(7)): the slack the campaign's pacer is configured with. Absent,
    # the deadline is 2 s after the greeting (the slack is then 2 s minus AMD's delay,
    # random) and the pacer assumes 1 s. Given, every person's deadline is exactly this
    # long after AMD's decision (AMD is taken to decide 2 s minus the slack after the
    # greeting), and the pacer is told so; 0 means an agent must be free at that instant.
    deadline_slack_seconds: float | None = None

    @property
    def p_no_answer(self) -> float:
        return 1.0 - self.p_live - self.p_machine - self.p_busy - self.p_unallocated


REQUIRED = (
    "agents", "days", "hours_per_day", "p_live", "p_machine", "p_busy", "p_unallocated",
    "ring_seconds", "talk_seconds", "wrap_seconds", "greeting_seconds", "amd_seconds",
    "ring_timeout_seconds", "max_lines",
)  # fmt: skip

_DISTRIBUTIONS = {
    "ring_seconds", "talk_seconds", "wrap_seconds", "greeting_seconds", "amd_seconds",
    "amd_machine_seconds", "machine_talk_seconds", "busy_seconds", "unallocated_seconds",
}  # fmt: skip


def scenario_from_mapping(raw: object, default_name: str = "scenario") -> Scenario:
    """Validate a parsed YAML/JSON document into a `Scenario`."""
    if not isinstance(raw, Mapping):
        raise ScenarioError("the scenario must be a mapping of field names to values")
    allowed = {f.name for f in fields(Scenario)}
    for key in raw:
        if key not in allowed:
            raise ScenarioError(f"{key} is not a scenario field")
    for key in REQUIRED:
        if key not in raw:
            raise ScenarioError(f"{key} is required")
    values: dict[str, Any] = {"name": str(raw.get("name", default_name))}
    for key, value in raw.items():
        if key == "name":
            continue
        if key in _DISTRIBUTIONS:
            values[key] = parse_distribution(value, key)
        elif key in ("agents", "days", "max_lines"):
            values[key] = _integer(value, key, minimum=1)
        elif key in ("lead_list_size", "breaks_per_day"):
            values[key] = _integer(value, key, minimum=0)
        elif key.startswith("p_") or key in ("amd_human_error", "amd_machine_error", "abandon_target"):
            values[key] = _probability(value, key)
        elif key in ("hours_per_day", "calls_per_second"):
            values[key] = _number(value, key, positive=True)
        else:
            values[key] = _number(value, key, minimum=0.0)
    scenario = Scenario(**values)
    if scenario.hours_per_day > 20:
        raise ScenarioError(f"hours_per_day must be <= 20, got {scenario.hours_per_day:g}")
    if scenario.shift_start_hour + scenario.hours_per_day > 23:
        raise ScenarioError("shift_start_hour + hours_per_day must end the shift before 23:00")
    if scenario.p_no_answer < -1e-9:
        raise ScenarioError("p_live + p_machine + p_busy + p_unallocated must be <= 1")
    if scenario.ring_timeout_seconds < 15:
        # A ring timeout under 15 s hangs up on people still reaching the phone
        # (47 CFR 64.1200(a)(6), 16 CFR 310.4(b)(4)(ii): at least 15 s or four rings).
        raise ScenarioError(
            f"ring_timeout_seconds must be >= 15, got {scenario.ring_timeout_seconds:g}"
        )
    if scenario.abandon_target <= 0:
        raise ScenarioError("abandon_target must be > 0")
    slack = scenario.deadline_slack_seconds
    if slack is not None and slack > 2.0:
        raise ScenarioError(f"deadline_slack_seconds must be <= 2 (the deadline itself), got {slack:g}")
    if scenario.break_minutes * scenario.breaks_per_day >= scenario.hours_per_day * 60:
        raise ScenarioError("breaks_per_day x break_minutes must be shorter than hours_per_day")
    return scenario


def load_scenario(path: Path) -> Scenario:
    """Read a YAML (.yaml/.yml) or JSON scenario file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read scenario file {path}: {error.strerror}") from error
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ScenarioError(f"scenario file {path} is not valid {path.suffix.lstrip('.')}") from error
    return scenario_from_mapping(raw, default_name=path.stem)
