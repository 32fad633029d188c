#!/usr/bin/env python3
"""Generate `dialer/ari/models.py` from the ARI swagger of the provisioned Asterisk.

    python scripts/gen_ari_models.py [REST_API_DIR] [--output dialer/ari/models.py] [--check]

REST_API_DIR defaults to `<Settings().asterisk_root>/usr/share/asterisk/rest-api`, the swagger
shipped with the Asterisk the project provisions. Every model of every `*.json` file becomes a
frozen dataclass named as ARI names it; every subtype of ARI's `Event` also becomes an event
class registered in `EVENT_TYPES` for `parse_event`. `--check` writes nothing and exits 1 when
the committed file differs from what the swagger gives (for CI).
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "dialer" / "ari" / "models.py"

# ARI's abstract bases: written by hand in the template below, not generated.
ABSTRACT_MODELS = {"Message", "Event"}

SCALARS: Mapping[str, tuple[str, str]] = {
    # swagger type -> (python annotation, reader in dialer.ari._json)
    "string": ("str", "as_str"),
    "int": ("int", "as_int"),
    "long": ("int", "as_int"),
    "double": ("float", "as_float"),
    "boolean": ("bool", "as_bool"),
    "Date": ("datetime", "as_datetime"),
    "object": ("JsonObject", "as_object"),
}


class SwaggerError(ValueError):
    """The swagger has something this generator does not know how to map."""


@dataclass(frozen=True)
class FieldSpec:
    json_name: str
    python_name: str
    swagger_type: str
    required: bool
    description: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    description: str
    fields: tuple[FieldSpec, ...]
    is_event: bool


def _clean(text: str) -> str:
    return " ".join(text.replace('"""', "'''").replace("\\", "\\\\").split())


def _fields(properties: Mapping[str, Mapping[str, object]]) -> list[FieldSpec]:
    fields = []
    for json_name, prop in properties.items():
        python_name = json_name + "_" if keyword.iskeyword(json_name) else json_name
        fields.append(
            FieldSpec(
                json_name=json_name,
                python_name=python_name,
                swagger_type=str(prop["type"]),
                required=prop.get("required") is True,
                description=_clean(str(prop.get("description", ""))),
            )
        )
    return fields


def load_models(rest_api_dir: Path) -> tuple[str, list[ModelSpec]]:
    """Read every `*.json` in the directory; return (apiVersion, models sorted data-first)."""
    files = sorted(path for path in rest_api_dir.glob("*.json") if path.name != "resources.json")
    if not files:
        raise SwaggerError(f"no ARI swagger files in {rest_api_dir}")
    raw_models: dict[str, tuple[str, Mapping[str, object]]] = {}
    for path in files:
        document = json.loads(path.read_text())
        for name, body in document.get("models", {}).items():
            if name in raw_models:
                raise SwaggerError(f"model {name} defined in both {raw_models[name][0]} and {path.name}")
            raw_models[name] = (path.name, body)
    api_version = json.loads((rest_api_dir / "resources.json").read_text()).get("apiVersion", "unknown")

    message = raw_models["Message"][1]
    event = raw_models["Event"][1]
    event_types = set(event["subTypes"])  # type: ignore[call-overload]
    common = [
        spec
        for spec in _fields(message["properties"]) + _fields(event["properties"])  # type: ignore[arg-type]
        if spec.json_name != "type"
    ]
    models = []
    for name, (source, body) in raw_models.items():
        if name in ABSTRACT_MODELS:
            continue
        own = _fields(body.get("properties", {}))  # type: ignore[arg-type]
        is_event = name in event_types
        if is_event and any(spec.python_name == "type" for spec in own):
            raise SwaggerError(f"event {name} has a field named 'type', which would hide Event.type")
        models.append(
            ModelSpec(
                name=name,
                source=source,
                description=_clean(str(body.get("description", ""))),
                fields=tuple((common if is_event else []) + own),
                is_event=is_event,
            )
        )
    missing = event_types - {spec.name for spec in models}
    if missing:
        raise SwaggerError(f"Event subtypes without a model: {sorted(missing)}")
    models.sort(key=lambda spec: (spec.is_event, spec.name))
    return api_version, models


def _annotation(swagger_type: str, known: set[str]) -> str:
    if swagger_type.startswith("List[") and swagger_type.endswith("]"):
        return f"tuple[{_annotation(swagger_type[5:-1], known)}, ...]"
    if swagger_type in SCALARS:
        return SCALARS[swagger_type][0]
    if swagger_type in known:
        return swagger_type
    raise SwaggerError(f"unknown swagger type {swagger_type!r}")


def _reader(swagger_type: str, known: set[str]) -> str:
    if swagger_type.startswith("List[") and swagger_type.endswith("]"):
        return f"list_of({_reader(swagger_type[5:-1], known)})"
    if swagger_type in SCALARS:
        return SCALARS[swagger_type][1]
    if swagger_type in known:
        return f"model({swagger_type}.from_json)"
    raise SwaggerError(f"unknown swagger type {swagger_type!r}")


def _render_model(spec: ModelSpec, known: set[str]) -> str:
    base = "(Event)" if spec.is_event else ""
    doc = spec.description or f"ARI model {spec.name}."
    lines = [
        "@dataclass(frozen=True, kw_only=True, slots=True)",
        f"class {spec.name}{base}:",
        '    """' + textwrap.fill(doc, 100, subsequent_indent="    "),
        "",
        f"    ARI model `{spec.name}` ({spec.source}).",
        '    """',
        "",
    ]
    # Required fields first only for readability; kw_only makes the order free.
    ordered = sorted(spec.fields, key=lambda field: not field.required)
    for field in ordered:
        annotation = _annotation(field.swagger_type, known)
        if field.required:
            lines.append(f"    {field.python_name}: {annotation}")
        else:
            lines.append(f"    {field.python_name}: {annotation} | None = None")
        if field.description:
            lines.append('    """' + textwrap.fill(field.description, 100, subsequent_indent="    ") + '"""')
    lines += [
        "",
        "    @classmethod",
        f'    def from_json(cls, raw: JsonObject, where: str = "{spec.name}") -> Self:',
        f'        """Parse ARI JSON into `{spec.name}`; ValueError names a missing or mistyped field."""',
    ]
    if not ordered:
        lines.append("        return cls()")
    else:
        lines.append("        return cls(")
        for field in ordered:
            how = "required" if field.required else "optional"
            reader = _reader(field.swagger_type, known)
            lines.append(f'            {field.python_name}={how}(raw, "{field.json_name}", where, {reader}),')
        lines.append("        )")
    return "\n".join(lines) + "\n"


HEADER = '''\
# GENERATED by scripts/gen_ari_models.py from the ARI swagger of the provisioned Asterisk
# (ARI apiVersion {api_version}). Do not edit: change the generator and run it again.
"""Typed, frozen ARI models and events, parsed once at the edge by `parse_event`.

Every class is named as ARI names it. Unknown extra fields are ignored (newer Asterisk
versions add fields); a missing required field raises a `ValueError` naming it; an event type
this module does not know becomes an `UnknownEvent` carrying its raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Self

from dialer.ari._json import (
    JsonObject,
    as_bool,
    as_datetime,
    as_float,
    as_int,
    as_object,
    as_str,
    list_of,
    model,
    optional,
    required,
)

ARI_API_VERSION: Final = "{api_version}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """ARI's base of every event delivered on the event WebSocket."""

    @property
    def type(self) -> str:
        """The ARI event type, e.g. ``StasisStart``."""
        return type(self).__name__

    @classmethod
    def from_json(cls, raw: JsonObject, where: str = "Event") -> Self:
        """Parse one event of this class (overridden by every concrete event)."""
        raise NotImplementedError(f"{{cls.__name__}} is abstract; use parse_event")


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownEvent(Event):
    """An event whose type this module does not know (e.g. added by a newer Asterisk)."""

    type_name: str
    """The `type` field of the raw event."""
    raw: JsonObject
    """The event's JSON, unparsed."""

    @property
    def type(self) -> str:
        return self.type_name

'''

FOOTER = '''

EVENT_TYPES: Final[Mapping[str, type[Event]]] = {{
{entries}
}}
"""Every ARI event type this module parses, by its `type` field."""


def parse_event(raw: Mapping[str, object]) -> Event:
    """Parse one message from the ARI event WebSocket.

    Raises ValueError when the message has no `type` or a known event misses a required
    field; returns `UnknownEvent` for a type not in `EVENT_TYPES`.
    """
    type_name = raw.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise ValueError(f"ARI event: missing required field 'type' (keys: {{sorted(raw)[:10]}})")
    event_class = EVENT_TYPES.get(type_name)
    if event_class is None:
        return UnknownEvent(type_name=type_name, raw=raw)
    return event_class.from_json(raw, type_name)
'''


def render(rest_api_dir: Path) -> str:
    """The text of models.py for the swagger in `rest_api_dir`."""
    api_version, models = load_models(rest_api_dir)
    known = {spec.name for spec in models}
    parts = [HEADER.format(api_version=api_version)]
    parts.append("\n\n".join(_render_model(spec, known) for spec in models))
    entries = "\n".join(f'    "{spec.name}": {spec.name},' for spec in models if spec.is_event)
    parts.append(FOOTER.format(entries=entries))
    return "\n".join(parts)


def _default_rest_api_dir() -> Path:
    sys.path.insert(0, str(REPO))
    from dialer.settings import from_environment

    return from_environment().asterisk_root / "usr" / "share" / "asterisk" / "rest-api"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rest_api_dir", nargs="?", type=Path, help="directory holding the ARI *.json swagger")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is out of date")
    args = parser.parse_args(argv)
    rest_api_dir: Path = args.rest_api_dir or _default_rest_api_dir()
    if not (rest_api_dir / "events.json").is_file():
        print(f"error: no ARI swagger (events.json) in {rest_api_dir}; pass the rest-api directory", file=sys.stderr)
        return 2
    try:
        text = render(rest_api_dir)
    except (SwaggerError, KeyError, json.JSONDecodeError) as error:
        print(f"error: cannot generate models from {rest_api_dir}: {error}", file=sys.stderr)
        return 2
    output: Path = args.output
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            print(f"{output} is out of date with {rest_api_dir}; run scripts/gen_ari_models.py", file=sys.stderr)
            return 1
        return 0
    output.write_text(text)
    print(f"wrote {output} ({sum(1 for line in text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
