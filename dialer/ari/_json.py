"""Field readers used by the generated models in `dialer.ari.models`.

Each reader takes the raw JSON object, the field name and `where` (the dotted path of the
object being parsed, e.g. ``StasisStart.channel``) so that a bad message raises a
`ValueError` naming exactly which field of which event is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")

JsonObject = Mapping[str, object]


def _missing(where: str, key: str) -> ValueError:
    return ValueError(f"{where}: missing required field {key!r}")


def _wrong(where: str, key: str, expected: str, value: object) -> ValueError:
    return ValueError(f"{where}.{key}: expected {expected}, got {type(value).__name__} {value!r:.80}")


def as_str(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def as_int(value: object, where: str, key: str) -> int:
    # bool is a subclass of int in Python; a JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(where, key, "an integer", value)
    return value


def as_float(value: object, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(where, key, "a number", value)
    return float(value)


def as_bool(value: object, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(where, key, "true or false", value)
    return value


def as_datetime(value: object, where: str, key: str) -> datetime:
    # ARI writes dates as 2024-05-01T10:00:00.123+0000, which fromisoformat reads on 3.11+.
    text = as_str(value, where, key)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _wrong(where, key, "an ISO 8601 date", value) from None


def as_object(value: object, where: str, key: str) -> JsonObject:
    if not isinstance(value, Mapping):
        raise _wrong(where, key, "an object", value)
    return value


def required(raw: JsonObject, key: str, where: str, read: Callable[[object, str, str], T]) -> T:
    """The value of a required field, converted by `read`; ValueError if absent or null."""
    value = raw.get(key)
    if value is None:
        raise _missing(where, key)
    return read(value, where, key)


def optional(raw: JsonObject, key: str, where: str, read: Callable[[object, str, str], T]) -> T | None:
    """The value of an optional field, or None when absent or null."""
    value = raw.get(key)
    if value is None:
        return None
    return read(value, where, key)


def list_of(read: Callable[[object, str, str], T]) -> Callable[[object, str, str], tuple[T, ...]]:
    """A reader for a JSON array whose items are read by `read`."""

    def read_list(value: object, where: str, key: str) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise _wrong(where, key, "a list", value)
        return tuple(read(item, where, f"{key}[{index}]") for index, item in enumerate(value))

    return read_list


def model(parse: Callable[[JsonObject, str], T]) -> Callable[[object, str, str], T]:
    """A reader for a nested ARI model, parsed by its `from_json`."""

    def read_model(value: object, where: str, key: str) -> T:
        return parse(as_object(value, where, key), f"{where}.{key}")

    return read_model
