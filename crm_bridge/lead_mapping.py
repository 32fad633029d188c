"""A lead file's field mapping and the rules for its rows: which column feeds which lead field,
what a valid value is, and the lead a valid row becomes. Pure.

The mapping is `field=Column Header` pairs separated by commas (a column header cannot itself
contain a comma), e.g. `name=Full Name,phone=Phone,phone=Mobile,email=E-mail,zip=ZIP`:

| field | lead | notes |
|---|---|---|
| `phone` | `phones` | repeat it for more numbers; the first is the preferred one; at least one |
| `name` or `first_name`, `last_name` | names | `name` is split at its last space ("Smith, Dana" too) |
| `email` | `email` | lower-cased |
| `address`, `address2`, `city` | address lines, city | |
| `state` | `state` | two-letter code |
| `zip` | `zip` | `12345`, `12345-6789`, `123456789`; 3-4 digits are zero-padded (spreadsheets drop leading zeros) |
| `consent`, `consent_at`, `consent_kind` | a `consent_records` row | evidence (e.g. a URL or form id), when it was given (ISO 8601 or MM/DD/YYYY; no zone = UTC), `pewc` (default) or `ptc` |
| `source` | `source` | default: the import's label |
| `custom.NAME` | `custom_fields.NAME` | NAME: lower-case letters, digits, `_` |

A row is invalid when a mapped value is malformed (the report names the field); empty cells are
simply absent. Rows are checked and converted a chunk at a time, column by column: a million
rows cost a few seconds, not a minute of per-cell method calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from json.encoder import encode_basestring_ascii

import numpy as np
import numpy.typing as npt

from compliance_rules.batch import INVALID, STATE_BIT, national_number
from compliance_rules.model import US_STATE_CODES
from crm_bridge.visible_text import INVISIBLE_FORMATTING, invisible_character, invisible_message

MAX_PHONES = 5
TEXT_LIMIT = 200
LONG_TEXT_LIMIT = 2000
TEXT_FIELDS = ("name", "first_name", "last_name", "address", "address2", "city", "source")
SINGLE_FIELDS = (*TEXT_FIELDS, "email", "state", "zip", "consent", "consent_at", "consent_kind")
_CUSTOM = re.compile(r"^custom\.([a-z0-9_]{1,40})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ZIP = re.compile(r"^(\d{3,5})(?:-?(\d{4}))?$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
CONSENT_KINDS = ("pewc", "ptc")
# A consent dated more than this ahead of the import is a data error, not a consent.
CONSENT_CLOCK_SKEW = timedelta(days=1)
EMPTY = -2  # a phone cell left empty (INVALID = -1: unreadable)

BoolArray = npt.NDArray[np.bool_]


class MappingError(ValueError):
    """The mapping, or the file's header, cannot be used; the message says what to fix."""


class RowProblem(StrEnum):
    """Why a row is not imported (the report's `reasons`)."""

    INVALID_NUMBER = "invalid_number"
    INVALID_FIELD = "invalid_field"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    DUPLICATE_IN_CRM = "duplicate_in_crm"
    DNC_FEDERAL = "dnc_federal"
    DNC_STATE = "dnc_state"
    DNC_INTERNAL = "dnc_internal"
    LITIGATOR = "litigator"
    OPTED_OUT = "opted_out"
    UNKNOWN_LOCATION = "unknown_location"


@dataclass(frozen=True)
class LeadMapping:
    """Lead field -> column header (phones: in order)."""

    phones: tuple[str, ...]
    fields: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"phone": list(self.phones), **self.fields, **{f"custom.{k}": v for k, v in self.custom.items()}}


def parse_mapping(text: str) -> LeadMapping:
    """`field=Column,...` -> LeadMapping; `MappingError` names the first problem."""
    phones: list[str] = []
    fields: dict[str, str] = {}
    custom: dict[str, str] = {}
    pairs = [part for part in text.split(",") if part.strip()]
    if not pairs:
        raise MappingError("the mapping is empty: give field=Column pairs such as phone=Phone,name=Full Name")
    for pair in pairs:
        target, sep, column = pair.partition("=")
        target, column = target.strip().lower(), column.strip()
        if not sep or not target or not column:
            raise MappingError(f"mapping entry {pair.strip()!r} is not field=Column")
        if target == "phone":
            phones.append(column)
        elif (match := _CUSTOM.match(target)) is not None:
            if match[1] in custom:
                raise MappingError(f"custom field {match[1]!r} is mapped twice")
            custom[match[1]] = column
        elif target in SINGLE_FIELDS:
            if target in fields:
                raise MappingError(f"field {target!r} is mapped twice")
            fields[target] = column
        else:
            raise MappingError(
                f"unknown field {target!r}: use phone, {', '.join(SINGLE_FIELDS)} or custom.NAME"
                " (lower-case letters, digits and _)"
            )
    if not phones:
        raise MappingError("the mapping needs at least one phone=Column")
    if len(phones) > MAX_PHONES:
        raise MappingError(f"at most {MAX_PHONES} phone columns can be mapped")
    if "name" in fields and ({"first_name", "last_name"} & set(fields)):
        raise MappingError("map either name or first_name/last_name, not both")
    return LeadMapping(tuple(phones), fields, custom)


def _column_index(header: Sequence[str], column: str) -> int:
    exact = [i for i, name in enumerate(header) if name == column]
    if not exact:
        exact = [i for i, name in enumerate(header) if name.lower() == column.lower()]
    if len(exact) > 1:
        raise MappingError(f"column {column!r} appears {len(exact)} times in the header")
    if not exact:
        shown = ", ".join(repr(name) for name in header[:12]) + (", ..." if len(header) > 12 else "")
        raise MappingError(f"the file has no column {column!r}; its columns are {shown}")
    return exact[0]


@lru_cache(maxsize=65536)
def parse_time(text: str) -> datetime | None:
    """ISO 8601 or MM/DD/YYYY -> aware UTC datetime (no zone given: UTC); None if unreadable."""
    match = _US_DATE.match(text)
    try:
        if match is not None:
            moment = datetime(int(match[3]), int(match[1]), int(match[2]))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _zip_value(text: str) -> tuple[int, str] | None:
    """'2108' -> (2108, '02108'); '12345-6789' -> (12345, '12345-6789'); bad -> None."""
    if len(text) == 5 and text.isdigit():
        return int(text), text
    match = _ZIP.match(text)
    if match is None:
        return None
    five = match[1].zfill(5)
    return int(five), five + (f"-{match[2]}" if match[2] else "")


def split_name(full: str) -> tuple[str | None, str | None]:
    """'Dana Q. Smith' -> ('Dana Q.', 'Smith'); 'Smith, Dana' -> ('Dana', 'Smith'); 'Cher' -> ('Cher', None)."""
    if not full:
        return None, None
    if "," in full:
        last, _, first = full.partition(",")
        return first.strip() or None, last.strip() or None
    first, _, last = full.rpartition(" ")
    if not first:
        return last, None
    return first.strip(), last.strip()


def _phone(cell: str) -> int:
    return national_number(cell) if cell and not cell.isspace() else EMPTY


def _unreadable_phone(column: Sequence[str]) -> Callable[[int], str]:
    return lambda i: f"{column[i].strip()[:40]!r} is not a valid US phone number"


@dataclass(frozen=True)
class CheckedChunk:
    """What the first reading keeps of a chunk of rows (numbers, and the e-mails for duplicates)."""

    bad: BoolArray  # a mapped value other than a phone is malformed
    bad_phone: BoolArray  # no phone, or one that cannot be read as a US number
    phone_rows: npt.NDArray[np.int32]  # chunk-local row of each phone, rows in order, slots in order
    phones: npt.NDArray[np.int64]  # national numbers (INVALID when unreadable)
    zips: npt.NDArray[np.int32]  # -1: none
    states: npt.NDArray[np.int8]  # bit of the state (compliance_rules.batch.STATE_BIT), -1: none
    emails: list[str | None]
    problems: list[tuple[str, str] | None] | None = None  # (field, message) per row, when asked


Check = tuple[str, BoolArray, Callable[[int], str]]  # field, bad rows, message for a bad row


class RowRules:
    """The mapping resolved against a file's header: checks and converts rows, a chunk at a time."""

    def __init__(self, mapping: LeadMapping, header: Sequence[str], default_source: str, now: datetime) -> None:
        self.mapping = mapping
        self.width = len(header)
        self.phone_columns = tuple(_column_index(header, column) for column in mapping.phones)
        self.columns = {name: _column_index(header, column) for name, column in mapping.fields.items()}
        self.custom_columns = {name: _column_index(header, column) for name, column in mapping.custom.items()}
        self.default_source = default_source
        self.latest_consent = now + CONSENT_CLOCK_SKEW

    def _column(self, table: Sequence[tuple[str, ...]], name: str) -> list[str] | None:
        """The stripped cells of a mapped field (None when the field is not mapped)."""
        index = self.columns.get(name)
        return None if index is None else list(map(str.strip, table[index]))

    def _table(self, rows: list[list[str]]) -> list[tuple[str, ...]]:
        """Rows (all of the header's width) turned into columns, in C."""
        return list(zip(*rows, strict=True)) if rows else [() for _ in range(self.width)]

    def _fit(self, rows: list[list[str]]) -> BoolArray:
        """Pad short rows with empty cells; rows longer than the header are malformed."""
        too_long = np.zeros(len(rows), dtype=np.bool_)
        width = self.width
        for index, row in enumerate(rows):
            if len(row) != width:
                if len(row) > width:
                    too_long[index] = True
                    del row[width:]
                else:
                    row.extend([""] * (width - len(row)))
        return too_long

    def pad(self, rows: list[list[str]]) -> None:
        """Give short rows empty cells up to the header's width (longer rows are left as they are)."""
        width = self.width
        for row in rows:
            if len(row) < width:
                row.extend([""] * (width - len(row)))

    @staticmethod
    def _text_check(name: str, values: Sequence[str], limit: int) -> Check | None:
        """Values (as written) longer than `limit` once stripped, or holding a NUL."""
        if max(map(len, values), default=0) <= limit and "\x00" not in "".join(values):
            return None  # the whole column is fine: the common case, checked in C
        bad = np.array([len(v.strip()) > limit or "\x00" in v for v in values], dtype=np.bool_)
        return name, bad, lambda i: f"{name} is longer than {limit} characters or holds a NUL character"

    @staticmethod
    def _visible_check(name: str, values: Sequence[str]) -> Check | None:
        """Values holding an invisible formatting character: the row is invalid, as the API
        refuses such a name (`crm_bridge.visible_text`; refused, not stripped)."""
        if INVISIBLE_FORMATTING.search("".join(values)) is None:
            return None  # the whole column is fine, checked in C
        found = [invisible_character(v) for v in values]
        return name, np.array([c is not None for c in found], dtype=np.bool_), \
            lambda i: f"{name} {invisible_message(found[i] or '')}"

    def check(self, rows: list[list[str]], *, details: bool = False) -> CheckedChunk:
        """Check every mapped value of every row (rows are padded in place to the header's width)."""
        count = len(rows)
        too_long = self._fit(rows)
        table = self._table(rows)
        checks: list[Check] = [("row", too_long, lambda i: f"the row has more fields than the header's {self.width} "
                                                          "(an unquoted comma?)")]
        # Phones: each mapped column read to a national number.
        cells = [table[index] for index in self.phone_columns]
        numbers = np.array([list(map(_phone, column)) for column in cells], dtype=np.int64).reshape(len(cells), count)
        present = numbers != EMPTY
        phone_checks: list[Check] = [("phone", ~present.any(axis=0), lambda i: "the row has no phone number")]
        for slot, column in enumerate(cells):
            phone_checks.append(("phone" if slot == 0 else f"phone{slot + 1}", numbers[slot] == INVALID,
                                 _unreadable_phone(column)))
        rows_of, slots_of = np.nonzero(present.T)
        # ZIP, state, e-mail.
        zips = np.full(count, -1, dtype=np.int32)
        if (zip_cells := self._column(table, "zip")) is not None:
            parsed = [_zip_value(v) if v else (-1, "") for v in zip_cells]
            zips = np.array([p[0] if p is not None else -1 for p in parsed], dtype=np.int32)
            checks.append(("zip", np.array([p is None for p in parsed], dtype=np.bool_),
                           lambda i: f"zip {zip_cells[i][:20]!r} is not a US ZIP code (12345 or 12345-6789)"))
        states = np.full(count, -1, dtype=np.int8)
        if (state_cells := self._column(table, "state")) is not None:
            upper = [v.upper() for v in state_cells]
            states = np.array([STATE_BIT.get(v, -1) if v in US_STATE_CODES else -1 for v in upper], dtype=np.int8)
            checks.append(("state", np.array([bool(v) and v not in US_STATE_CODES for v in upper], dtype=np.bool_),
                           lambda i: f"state {upper[i][:20]!r} is not a two-letter US state code"))
        emails: list[str | None] = [None] * count
        if (email_cells := self._column(table, "email")) is not None:
            emails = [v.lower() or None for v in email_cells]
            match = _EMAIL.match
            checks.append(("email", np.array([v is not None and (len(v) > TEXT_LIMIT or match(v) is None)
                                              for v in emails], dtype=np.bool_),
                           lambda i: f"email {email_cells[i][:60]!r} is not an e-mail address"))
        # Plain text fields and custom fields: length and NUL; names and the other one-line texts
        # also no invisible formatting (custom fields are free text, as an API note is).
        for name in TEXT_FIELDS:
            index = self.columns.get(name)
            if index is not None and (found := self._text_check(name, table[index], TEXT_LIMIT)):
                checks.append(found)
            if index is not None and (found := self._visible_check(name, table[index])):
                checks.append(found)
        for name, index in self.custom_columns.items():
            if (found := self._text_check(f"custom.{name}", table[index], LONG_TEXT_LIMIT)) is not None:
                checks.append(found)
        checks.extend(self._consent_checks(table, count))
        bad = np.zeros(count, dtype=np.bool_)
        for _, failed, _ in checks:
            bad |= failed
        bad_phone = np.zeros(count, dtype=np.bool_)
        for _, failed, _ in phone_checks:
            bad_phone |= failed
        problems: list[tuple[str, str] | None] | None = None
        if details:
            problems = [None] * count
            ordered = [*checks[:1], *phone_checks, *checks[1:]]
            for index in np.flatnonzero(bad | bad_phone).tolist():
                name, _, message = next(c for c in ordered if c[1][index])
                problems[index] = (name, message(index))
        return CheckedChunk(bad, bad_phone, rows_of.astype(np.int32), numbers[slots_of, rows_of], zips, states, emails,
                            problems)

    def _consent_checks(self, table: Sequence[tuple[str, ...]], count: int) -> list[Check]:
        evidence = self._column(table, "consent")
        when = self._column(table, "consent_at")
        kind = self._column(table, "consent_kind")
        if evidence is None and when is None and kind is None:
            return []
        blank = [""] * count
        evidence, when, kind = evidence or blank, when or blank, kind or blank
        checks: list[Check] = []
        if (found := self._text_check("consent", evidence, LONG_TEXT_LIMIT)) is not None:
            checks.append(found)
        wanted = [bool(e or w or k) for e, w, k in zip(evidence, when, kind, strict=True)]
        times = [parse_time(w) if w else None for w in when]
        latest = self.latest_consent
        checks.append(("consent_at", np.array([want and not w for want, w in zip(wanted, when, strict=True)]),
                       lambda i: "consent evidence needs the time it was given (consent_at)"))
        checks.append(("consent_at", np.array([bool(w) and t is None for w, t in zip(when, times, strict=True)]),
                       lambda i: f"consent_at {when[i][:40]!r} is not a date or time (ISO 8601 or MM/DD/YYYY)"))
        checks.append(("consent_at", np.array([t is not None and t > latest for t in times], dtype=np.bool_),
                       lambda i: f"consent_at {when[i][:40]!r} is in the future"))
        checks.append(("consent_kind", np.array([bool(k) and k.lower() not in CONSENT_KINDS for k in kind]),
                       lambda i: f"consent_kind {kind[i][:20]!r} is not one of {', '.join(CONSENT_KINDS)}"))
        return checks

    def _custom_json(self, table: Sequence[tuple[str, ...]], count: int) -> list[str]:
        """Each row's custom fields as a JSON object (names are [a-z0-9_], values escaped)."""
        if not self.custom_columns:
            return ["{}"] * count
        parts = [[f'"{name}":{encode_basestring_ascii(v)}' if v else "" for v in map(str.strip, table[index])]
                 for name, index in self.custom_columns.items()]
        return ["{" + ",".join(filter(None, fields)) + "}" for fields in zip(*parts, strict=True)]

    def problem(self, row: list[str]) -> tuple[str, str] | None:
        """(field, message) when the row is invalid, else None (the report's detail)."""
        checked = self.check([list(row)], details=True)
        return checked.problems[0] if checked.problems else None

    def leads(self, rows: list[list[str]], phones: Sequence[Sequence[int]]) -> list[tuple[object, ...]]:
        """The lead of each (valid, padded) row: first_name, last_name, phones, email, address_line1,
        address_line2, city, state, zip, source, custom_fields (JSON text), consent_kind,
        consent_at, consent_evidence.
        `phones` holds each row's national numbers from `check`."""
        count = len(rows)
        table = self._table(rows)
        none: list[str | None] = [None] * count
        if "name" in self.columns:
            names = [split_name(v) for v in self._column(table, "name") or ()]
            first: list[str | None] = [n[0] for n in names]
            last: list[str | None] = [n[1] for n in names]
        else:
            first = [v or None for v in self._column(table, "first_name") or none]
            last = [v or None for v in self._column(table, "last_name") or none]
        numbers = [
            [f"+1{numbers[0]:010d}"] if len(numbers) == 1
            else list(dict.fromkeys(f"+1{number:010d}" for number in numbers))
            for numbers in phones
        ]

        def optional(name: str, transform: Callable[[str], str] = str) -> list[str | None]:
            values = self._column(table, name)
            return none if values is None else [transform(v) if v else None for v in values]

        zips = self._column(table, "zip")
        zip_texts = none if zips is None else [(_zip_value(v) or (0, ""))[1] or None if v else None for v in zips]
        source = self._column(table, "source")
        sources = [self.default_source] * count if source is None else [v or self.default_source for v in source]
        customs = self._custom_json(table, count)
        when = self._column(table, "consent_at")
        times = none if when is None else [parse_time(w) if w else None for w in when]
        kinds = self._column(table, "consent_kind")
        consent_kinds = [("pewc" if not k else k.lower()) if t is not None else None
                         for t, k in zip(times, kinds or [""] * count, strict=True)]
        return list(zip(
            first, last, numbers, optional("email", str.lower), optional("address"), optional("address2"),
            optional("city"), optional("state", str.upper), zip_texts, sources, customs, consent_kinds, times,
            optional("consent"), strict=True,
        ))
