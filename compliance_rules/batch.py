"""Numbers in bulk: E.164 normalisation, location and list look-ups for a million numbers at
once, agreeing with the gate's one-at-a-time rules (`numbers.parse_number`, `rules.locate`). Pure.

The gate's per-number path calls phonenumbers for every number (about 30 µs) and asks Redis per
number; a list import of a million leads cannot afford either. Here:

* `national_number(raw)` reads the usual US spellings ("(212) 555-0142", "+1 212.555.0142",
  "12125550142") with string operations and hands anything else (letters, extensions, other
  country codes) to `parse_number`, so every spelling gets the gate's answer;
* `classify()` looks each number's NPA-NXX up in a table of `parse_number`'s outcomes shipped in
  `data/nanp_prefixes.json.gz` (built by `compliance_rules.tools.build_location_data`): validity,
  dialability, whether it is geographic, its area-code states. One numpy index for the batch;
* `locate()` adds the ZIP code's and the given state's contribution, as `rules.locate` does, and
  says which numbers have no known location (`unknown_location`) and which states' lists apply;
* `bits_set()` tests numbers against an area code's DNC bitmap fetched once (the Redis side is
  `compliance_rules.scrub`).

States are carried as 64-bit masks (`STATES` gives the bit of each code).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from compliance_rules import location as zip_data
from compliance_rules.model import US_STATE_CODES
from compliance_rules.numbers import parse_number
from compliance_rules.ruleset import DATA_DIR

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
MaskArray = npt.NDArray[np.uint64]

INVALID = -1  # `national_number`: not a valid, dialable US number
_PER_NUMBER = "per_number"
_SEPARATORS = str.maketrans("", "", " -.()")  # what phonenumbers also ignores (not a tab)


def _state_codes() -> tuple[str, ...]:
    codes = set(US_STATE_CODES)
    codes.update(state for state, _, _, _ in zip_data.centroids()[1].values())
    if len(codes) > 64:  # pragma: no cover - the data would have to grow by a dozen states
        raise RuntimeError(f"{len(codes)} state codes do not fit a 64-bit mask")
    return tuple(sorted(codes))


STATES: tuple[str, ...] = _state_codes()
STATE_BIT: dict[str, int] = {code: index for index, code in enumerate(STATES)}


def state_mask(states: Iterable[str]) -> int:
    mask = 0
    for state in states:
        bit = STATE_BIT.get(state)
        if bit is not None:
            mask |= 1 << bit
    return mask


def states_of(mask: int) -> tuple[str, ...]:
    return tuple(code for code, bit in STATE_BIT.items() if mask >> bit & 1)


def national_number(raw: str) -> int:
    """The 10-digit US national number of `raw` as an integer, or `INVALID`.

    Plain spellings (digits with spaces, dashes, dots, parentheses, an optional leading `+1` or
    `1`) are read directly; any other text goes through `parse_number`, the gate's own parser.
    The result is not yet checked against the numbering plan: `classify` does that.
    """
    digits = raw.strip().translate(_SEPARATORS)
    plus = digits[:1] == "+"
    if plus:
        digits = digits[1:]
    if digits.isdigit() and digits.isascii():
        if len(digits) == 10 and not plus:
            return int(digits)
        if len(digits) == 11 and digits[0] == "1":
            return int(digits[1:])
    info = parse_number(raw)
    return info.npa * 10**7 + info.local if info.ok else INVALID


def e164(national: int) -> str:
    return f"+1{national:010d}"


@dataclass(frozen=True)
class PrefixTable:
    """`parse_number`'s outcome for every NPA-NXX (see `tools/build_location_data.py`)."""

    source: str
    classes: npt.NDArray[np.uint8]  # prefix (NPA * 1000 + NXX) -> class id
    ok: BoolArray  # class -> a valid, dialable US number
    geographic: BoolArray  # class -> has zones of its own
    states: MaskArray  # class -> area-code states
    per_number: BoolArray  # class -> decided by more than six digits: ask parse_number


@cache
def prefix_table() -> PrefixTable:
    raw = json.loads(gzip.decompress((DATA_DIR / "nanp_prefixes.json.gz").read_bytes()))
    classes = raw["classes"]
    table = np.zeros(10**6, dtype=np.uint8)  # class 0: invalid
    runs = raw["runs"]
    for (npa, nxx, class_id), following in zip(runs, [*runs[1:], None], strict=True):
        end = following[0] * 1000 + following[1] if following and following[0] == npa else (npa + 1) * 1000
        table[npa * 1000 + nxx : end] = class_id
    return PrefixTable(
        source=str(raw["source"]),
        classes=table,
        ok=np.array([problem == "" for problem, _, _, _ in classes]),
        geographic=np.array([bool(geo) for _, geo, _, _ in classes]),
        states=np.array([state_mask(states) for _, _, _, states in classes], dtype=np.uint64),
        per_number=np.array([problem == _PER_NUMBER for problem, _, _, _ in classes]),
    )


@dataclass(frozen=True)
class Classified:
    """What the numbers alone say (one entry per number)."""

    ok: BoolArray
    geographic: BoolArray
    states: MaskArray


def classify(nationals: Int64Array) -> Classified:
    """Validity, dialability, geography and area-code states of 10-digit numbers (`INVALID` in,
    not ok out), exactly as `parse_number` judges them."""
    table = prefix_table()
    given = nationals >= 0
    prefixes = np.where(given, nationals // 10_000, 0)
    class_ids = table.classes[prefixes]
    ok = table.ok[class_ids] & given
    geographic = table.geographic[class_ids] & given
    states = np.where(ok, table.states[class_ids], np.uint64(0))
    for index in np.flatnonzero(table.per_number[class_ids] & given):
        info = parse_number(e164(int(nationals[index])))
        ok[index] = info.ok
        geographic[index] = info.ok and info.geographic
        states[index] = np.uint64(state_mask(info.npa_states) if info.ok else 0)
    return Classified(ok, geographic, states)


@dataclass(frozen=True)
class ZipTable:
    """ZIP code (as an integer) -> the bit of its state and whether its zone is known."""

    state_bit: npt.NDArray[np.int8]  # -1: not in the ZIP data
    zone_known: BoolArray


@cache
def zip_table() -> ZipTable:
    state_bit = np.full(100_000, -1, dtype=np.int8)
    zone_known = np.zeros(100_000, dtype=np.bool_)
    for code in zip_data.centroids()[1]:
        found = zip_data.locate_zip(code)
        if found is None or not code.isdigit():
            continue
        state_bit[int(code)] = STATE_BIT[found.state]
        zone_known[int(code)] = found.zone is not None
    return ZipTable(state_bit, zone_known)


@cache
def _state_has_zones() -> BoolArray:
    return np.array([bool(zip_data.zones_for_state(code)) for code in STATES])


@dataclass(frozen=True)
class Located:
    """Where each lead may be, for the list and location rules."""

    ok: BoolArray  # a valid, dialable US number
    states: MaskArray  # area-code states | ZIP state | given state (only for ok numbers)
    unknown_location: BoolArray  # ok, but no time zone can be known (the gate blocks it)


def locate(nationals: Int64Array, zips: npt.NDArray[np.int32], states: npt.NDArray[np.int8]) -> Located:
    """`rules.locate` for a batch: `zips` are 5-digit ZIP codes as integers (-1: none), `states`
    the bit of the lead's given state (-1: none).

    A ZIP code not in the offline data, or without a zone, makes the location unknown; a number
    that is not geographic (toll-free, personal) needs a ZIP code's or a state's zone.
    """
    numbers = classify(nationals)
    table = zip_table()
    has_zip = zips >= 0
    zip_index = np.where(has_zip, zips, 0)
    zip_state = np.where(has_zip, table.state_bit[zip_index], -1)
    zip_known = has_zip & (zip_state >= 0) & table.zone_known[zip_index]
    has_state = states >= 0
    state_index = np.where(has_state, states, 0).astype(np.int64)
    # rules.locate: the state's zones count only when the ZIP gave none.
    state_zone = has_state & ~zip_known & _state_has_zones()[state_index]
    mask = numbers.states.copy()
    mask |= np.where(zip_known, np.left_shift(np.uint64(1), np.maximum(zip_state, 0).astype(np.uint64)), np.uint64(0))
    mask |= np.where(has_state, np.left_shift(np.uint64(1), state_index.astype(np.uint64)), np.uint64(0))
    mask = np.where(numbers.ok, mask, np.uint64(0))
    unknown = numbers.ok & ((has_zip & ~zip_known) | ~(numbers.geographic | zip_known | state_zone))
    return Located(numbers.ok, mask, unknown)


def with_state(masks: MaskArray, state: str) -> BoolArray:
    """Which entries' state masks include `state`."""
    bit = STATE_BIT.get(state)
    if bit is None:
        return np.zeros(len(masks), dtype=np.bool_)
    found: BoolArray = (masks >> np.uint64(bit)) & np.uint64(1) == np.uint64(1)
    return found


def bits_set(bitmap: bytes | None, offsets: Int64Array) -> BoolArray:
    """Whether each 7-digit local number's bit is set in an area code's DNC bitmap (Redis bit
    order: bit 0 is the most significant bit of byte 0; a bitmap shorter than an offset, or
    absent, has that bit clear)."""
    found = np.zeros(len(offsets), dtype=np.bool_)
    if not bitmap:
        return found
    data = np.frombuffer(bitmap, dtype=np.uint8)
    byte = offsets >> 3
    inside = byte < len(data)
    shift = (7 - (offsets[inside] & 7)).astype(np.uint8)
    found[inside] = (data[byte[inside]] >> shift) & 1 == 1
    return found


def members_in(members: Sequence[bytes] | set[bytes], offsets: Int64Array) -> BoolArray:
    """Whether each local number is in a Redis set of local numbers (decimal strings)."""
    if not members:
        return np.zeros(len(offsets), dtype=np.bool_)
    values = np.array([int(m) for m in members if m.isdigit()], dtype=np.int64)
    return np.isin(offsets, values)


def group_by_npa(nationals: Int64Array) -> list[tuple[int, Int64Array]]:
    """(NPA, positions in `nationals`) for each area code present, positions in input order."""
    npas = nationals // 10**7
    order = np.argsort(npas, kind="stable")
    sorted_npas = npas[order]
    cuts = np.flatnonzero(np.diff(sorted_npas)) + 1
    starts = [0, *cuts.tolist()]
    return [(int(sorted_npas[start]), part) for start, part in zip(starts, np.split(order, cuts), strict=True)
            if len(part)]
