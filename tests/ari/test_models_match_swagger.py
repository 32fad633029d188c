"""The committed `dialer/ari/models.py` matches the ARI swagger of the provisioned Asterisk.

Every event type and model in the swagger has a class, every field is there with a compatible
type, and required fields are required. Regenerate with `scripts/gen_ari_models.py` when this
fails after an Asterisk upgrade.
"""

from __future__ import annotations

import dataclasses
import json
import keyword
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dialer.ari import models
from dialer.settings import from_environment

SYSTEM_REST_API = Path("/usr/share/asterisk/rest-api")


def _rest_api_dir() -> Path | None:
    cached = from_environment().asterisk_root / "usr" / "share" / "asterisk" / "rest-api"
    for candidate in (cached, SYSTEM_REST_API):
        if (candidate / "events.json").is_file():
            return candidate
    return None


REST_API = _rest_api_dir()
pytestmark = pytest.mark.skipif(
    REST_API is None,
    reason=(
        "no ARI swagger: neither the provisioned Asterisk root "
        "(<DIALER_CACHE_DIR>/asterisk-root/usr/share/asterisk/rest-api) nor "
        f"{SYSTEM_REST_API} exists; provision Asterisk first"
    ),
)

SCALARS: Mapping[str, object] = {
    "string": str,
    "int": int,
    "long": int,
    "double": float,
    "boolean": bool,
    "Date": datetime,
    "object": Mapping[str, object],
}


def _swagger_models() -> dict[str, dict[str, Any]]:
    assert REST_API is not None
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(REST_API.glob("*.json")):
        found.update(json.loads(path.read_text()).get("models", {}))
    return found


def _expected(swagger_type: str) -> object:
    if swagger_type.startswith("List[") and swagger_type.endswith("]"):
        return tuple[_expected(swagger_type[5:-1]), ...]  # type: ignore[misc]
    if swagger_type in SCALARS:
        return SCALARS[swagger_type]
    return getattr(models, swagger_type)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(models))


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _python_name(json_name: str) -> str:
    return json_name + "_" if keyword.iskeyword(json_name) else json_name


def test_every_swagger_event_type_has_a_registered_class() -> None:
    swagger = _swagger_models()
    event_types = set(swagger["Event"]["subTypes"])
    assert event_types - set(models.EVENT_TYPES) == set(), "event types missing from models.EVENT_TYPES"
    for name in event_types:
        assert issubclass(models.EVENT_TYPES[name], models.Event)


def test_every_swagger_model_has_a_frozen_dataclass() -> None:
    for name in set(_swagger_models()) - {"Message", "Event"}:
        cls = getattr(models, name, None)
        assert cls is not None, f"model {name} is missing from dialer.ari.models"
        assert isinstance(cls, type) and dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen, f"{name} is not frozen"  # type: ignore[attr-defined]


def _own_and_inherited_properties(swagger: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    properties = dict(swagger[name].get("properties", {}))
    if name in swagger["Event"]["subTypes"]:
        properties.update(swagger["Event"]["properties"])
        properties.update({k: v for k, v in swagger["Message"]["properties"].items() if k != "type"})
    return properties


def test_every_field_is_present_with_a_compatible_type() -> None:
    swagger = _swagger_models()
    problems = []
    for name in sorted(set(swagger) - {"Message", "Event"}):
        cls = getattr(models, name)
        hints = _hints(cls)
        fields = {field.name: field for field in dataclasses.fields(cls)}
        for json_name, prop in _own_and_inherited_properties(swagger, name).items():
            python_name = _python_name(json_name)
            if python_name not in hints:
                problems.append(f"{name}.{json_name}: missing")
                continue
            annotation, optional = _strip_optional(hints[python_name])
            if annotation != _expected(prop["type"]):
                problems.append(f"{name}.{json_name}: {annotation} is not {prop['type']}")
            required = prop.get("required") is True
            if required == optional:
                problems.append(f"{name}.{json_name}: required={required} but annotation optional={optional}")
            if not required and fields[python_name].default is not None:
                problems.append(f"{name}.{json_name}: optional but has no None default")
    assert problems == []


def test_a_minimal_instance_of_every_event_round_trips_through_parse_event() -> None:
    """Build the smallest valid JSON of each event from the swagger and parse it."""
    swagger = _swagger_models()

    def minimal(name: str) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for json_name, prop in _own_and_inherited_properties(swagger, name).items():
            if prop.get("required") is True:
                raw[json_name] = sample(prop["type"])
        return raw

    def sample(swagger_type: str) -> Any:
        if swagger_type.startswith("List["):
            return [sample(swagger_type[5:-1])]
        scalars: dict[str, Any] = {
            "string": "x",
            "int": 1,
            "long": 1,
            "double": 1.5,
            "boolean": True,
            "Date": "2025-03-01T14:02:05.120+0000",
            "object": {},
        }
        return scalars[swagger_type] if swagger_type in scalars else minimal(swagger_type)

    for name in swagger["Event"]["subTypes"]:
        event = models.parse_event({"type": name, **minimal(name)})
        assert type(event) is models.EVENT_TYPES[name]
