"""Importing a CSV file of leads into the CRM, scrubbed like every dial (`dialer leads import`,
`POST /v1/lead-imports`).

The file is read twice, streamed, so a million rows take a few MB besides the numbers:

1. **Read**: every row is checked against the mapping (`lead_mapping.RowRules`); only numbers
   are kept (phones as 10-digit integers, ZIP, state) and the e-mails.
2. **Locate** (numpy, `compliance_rules.batch`): invalid and undialable numbers, the states whose
   lists apply, numbers with no knowable time zone (`unknown_location`).
3. **De-duplicate**: a row repeating a phone or e-mail of an earlier imported row of the file,
   or of a lead already in the CRM, is a duplicate (the same rule as `POST /v1/leads`).
4. **Scrub** (`compliance_rules.scrub`): every number of the remaining rows against the federal
   registry, the state lists of every state the lead may be in, the internal, litigator and
   opt-out lists. A row is imported only if every one of its numbers passes.
5. **Write**: the second reading turns accepted rows into leads, streamed by COPY into `leads`
   (PostgreSQL inserts and indexes them while Python reads on), then the consent rows (spooled
   to a temporary file meanwhile) and campaign memberships, with the `lead_imports` row, in one
   transaction; the per-row report is written beside it.

Why COPY and not the outbox: the outbox writes one row per statement (about 2,000 rows/s), so a
million leads would take minutes and a million SQLite rows. The outbox's guarantees hold anyway:
the source file is the durable record until the transaction commits (the API keeps the upload in
its spool until then, the CLI user keeps the file); the transaction writes all of an import or
none of it; the `lead_imports` row (primary key = import id) commits with the leads, so a retried
import finds it and writes nothing twice; lead ids are the import id and row number, the same on
every attempt. Imports take an advisory lock, so two imports never judge duplicates against each
other's uncommitted rows. (A web lead posted during an import is not locked out: it may duplicate
an imported lead, and is then merged like any duplicate web lead later.)

The gate still decides every dial at its instant: the scrub keeps listed numbers out of the CRM's
dialing lists; it does not replace the decision.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from itertools import islice
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

import asyncpg
import numpy as np
import numpy.typing as npt

from compliance_rules import batch
from compliance_rules.freshness import FreshnessStatus, describe_list, list_freshness
from compliance_rules.ruleset import RuleBook
from compliance_rules.scrub import ScrubHits
from crm_bridge.lead_mapping import LeadMapping, MappingError, RowProblem, RowRules

# pg_advisory_xact_lock key serialising imports ("dialer" + 2).
LEAD_IMPORT_LOCK = 0x6469616C65720002
CHUNK_ROWS = 2_000  # rows per chunk; the event loop (the API shares it with the calls) runs between chunks
CSV_FIELD_LIMIT = 1 << 20
DELIMITERS = ",;\t|"
REPORT_COLUMNS = ("row", "line", "status", "reasons", "lead_id", "phone", "detail")

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class _Stopwatch:
    """Adds the time since the last lap to `seconds[name]`, and this process's CPU time to
    `seconds[name + "_cpu"]` (the benchmark prints both: on a shared machine they differ)."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.mark = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.mark
        self.seconds[f"{name}_cpu"] = self.seconds.get(f"{name}_cpu", 0.0) + cpu - self.cpu
        self.mark, self.cpu = now, cpu


class ImportInputError(ValueError):
    """The file cannot be imported as given (one sentence naming what to fix)."""


class Scrubber(Protocol):
    """`compliance_rules.scrub.BatchScrubber`, or a fake in unit tests."""

    book: RuleBook

    async def scrub(self, nationals: batch.Int64Array, states: batch.MaskArray) -> ScrubHits: ...


class RowStatus:
    """A row's fate (an index into NAMES, kept in a uint8 array)."""

    ACCEPTED = 0
    INVALID = 1
    DUPLICATE = 2
    REJECTED = 3
    NAMES = ("accepted", "invalid", "duplicate", "rejected")


_FLAG = {problem: 1 << index for index, problem in enumerate(RowProblem)}
_LIST_FLAGS = (
    (RowProblem.DNC_FEDERAL, "on the National DNC Registry"),
    (RowProblem.DNC_INTERNAL, "on the internal DNC list"),
    (RowProblem.LITIGATOR, "on the litigator list"),
    (RowProblem.OPTED_OUT, "opted out"),
)


@dataclass(frozen=True)
class ImportPlan:
    """One import: what to read, how to map it, where the leads and the report go."""

    import_id: str
    source: Path
    mapping: LeadMapping
    label: str  # the file's name or the caller's label; the default lead source is "import:LABEL"
    campaign_id: str | None = None
    report: Path | None = None  # per-row report CSV (written to REPORT.part, renamed at commit)
    list_id: str | None = None  # the lead list the leads go on; they join the campaigns it is assigned to


@dataclass
class ImportCounts:
    rows: int = 0
    accepted: int = 0
    invalid: int = 0
    duplicate: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # rows per reason (a row may have several)
    dnc_states: dict[str, int] = field(default_factory=dict)  # rows on each state's list

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "accepted": self.accepted, "invalid": self.invalid, "duplicate": self.duplicate,
                "rejected": self.rejected, "reasons": dict(self.reasons), "dnc_states": dict(self.dnc_states)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportCounts:
        return cls(
            rows=int(data["rows"]), accepted=int(data["accepted"]), invalid=int(data["invalid"]),
            duplicate=int(data["duplicate"]), rejected=int(data["rejected"]),
            reasons={str(k): int(v) for k, v in data.get("reasons", {}).items()},
            dnc_states={str(k): int(v) for k, v in data.get("dnc_states", {}).items()},
        )

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {name}" for name, count in sorted(self.reasons.items()) if count)
        return (f"{self.rows} rows: {self.accepted} accepted, {self.invalid} invalid, {self.duplicate} duplicate, "
                f"{self.rejected} rejected by the scrub" + (f" ({reasons})" if reasons else ""))


@dataclass(frozen=True)
class ImportOutcome:
    import_id: str
    counts: ImportCounts
    list_dates: dict[str, str]
    warnings: tuple[str, ...] = ()
    already_committed: bool = False  # an earlier attempt committed this import; nothing was written now
    seconds: dict[str, float] = field(default_factory=dict)  # per phase


# ---- reading the file ------------------------------------------------------------------------
@dataclass(frozen=True)
class CsvLayout:
    header: tuple[str, ...]
    delimiter: str


def read_layout(head: bytes) -> CsvLayout:
    """The header row and delimiter from the first bytes of a file (at least its first line)."""
    text = _decode(head.split(b"\n", 1)[0], 1).lstrip("\ufeff").rstrip("\r")
    if not text.strip():
        raise ImportInputError("the file is empty or its first line (the header) is blank")
    counts = {d: text.count(d) for d in DELIMITERS}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    header = next(csv.reader([text], delimiter=delimiter))
    return CsvLayout(tuple(name.strip() for name in header), delimiter)


def _decode(data: bytes, line: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportInputError(f"line {line} is not UTF-8 text: save the file as UTF-8 CSV") from None


def _first_undecodable_line(path: Path) -> int:
    """The number of the first line that is not UTF-8 (the text reader fails a block at a time)."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def rules_for(plan: ImportPlan, layout: CsvLayout, now: datetime) -> RowRules:
    try:
        return RowRules(plan.mapping, layout.header, f"import:{plan.label}"[:200], now)
    except MappingError as error:
        raise ImportInputError(str(error)) from None


class _Rows:
    """The data rows of the file in chunks, with the bytes read so far (for the progress bar)."""

    def __init__(self, path: Path, layout: CsvLayout) -> None:
        self.path = path
        self.layout = layout
        self.size = max(path.stat().st_size, 1)
        self._raw: IO[bytes] | None = None

    @property
    def done(self) -> int:
        return self._raw.tell() if self._raw is not None and not self._raw.closed else self.size

    def chunks(self, size: int = CHUNK_ROWS, *, lines: bool = True) -> Iterator[tuple[list[int], list[list[str]]]]:
        """(line numbers, cells) of the next `size` non-blank data rows, until the end; without
        `lines` the line numbers are left out (an empty list) and rows are taken in C."""
        csv.field_size_limit(CSV_FIELD_LIMIT)
        with self.path.open("rb") as raw:
            self._raw = raw
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=self.layout.delimiter)
            try:
                next(reader, None)
                if not lines:
                    while block := list(islice(reader, size)):
                        yield [], [cells for cells in block if len(cells) > 1 or (cells and cells[0].strip())]
                    return
                numbers: list[int] = []
                rows: list[list[str]] = []
                for cells in reader:
                    if cells and (len(cells) > 1 or cells[0].strip()):
                        numbers.append(reader.line_num)
                        rows.append(cells)
                        if len(rows) == size:
                            yield numbers, rows
                            numbers, rows = [], []
                if rows:
                    yield numbers, rows
            except UnicodeDecodeError:
                line = _first_undecodable_line(self.path)
                raise ImportInputError(f"line {line} is not UTF-8 text: save the file as UTF-8 CSV") from None
            except csv.Error as error:
                raise ImportInputError(f"line {reader.line_num} is not valid CSV ({error})") from None


# ---- the pipeline ----------------------------------------------------------------------------
@dataclass
class _Numbers:
    """Pass 1's output: per row and per phone, numbers only (and the e-mails, for duplicates)."""

    field_problem: npt.NDArray[np.bool_]
    phone_problem: npt.NDArray[np.bool_]  # no phone, or an unreadable one
    zips: npt.NDArray[np.int32]
    states: npt.NDArray[np.int8]
    emails: list[str | None]
    phone_rows: npt.NDArray[np.int32]  # rows in order
    phones: npt.NDArray[np.int64]

    @property
    def rows(self) -> int:
        return len(self.field_problem)

    def row_starts(self) -> npt.NDArray[np.int64]:
        """Index of each row's first phone (and one past the last row's)."""
        return np.searchsorted(self.phone_rows, np.arange(self.rows + 1)).astype(np.int64)


async def _first_pass(rows: _Rows, rules: RowRules, progress: Progress | None) -> _Numbers:
    problems: list[npt.NDArray[np.bool_]] = []
    phone_problems: list[npt.NDArray[np.bool_]] = []
    zips: list[npt.NDArray[np.int32]] = []
    states: list[npt.NDArray[np.int8]] = []
    phone_rows: list[npt.NDArray[np.int32]] = []
    phones: list[npt.NDArray[np.int64]] = []
    emails: list[str | None] = []
    base = 0
    for _, chunk in rows.chunks(lines=False):
        if not chunk:
            continue
        checked = rules.check(chunk)
        problems.append(checked.bad)
        phone_problems.append(checked.bad_phone)
        zips.append(checked.zips)
        states.append(checked.states)
        phone_rows.append(checked.phone_rows + base)
        phones.append(checked.phones)
        emails.extend(checked.emails)
        base += len(chunk)
        if progress:
            progress("read", rows.done, rows.size)
        await asyncio.sleep(0)
    if progress:
        progress("read", rows.size, rows.size)

    def joined(parts: list[Any], dtype: Any) -> Any:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    return _Numbers(joined(problems, np.bool_), joined(phone_problems, np.bool_), joined(zips, np.int32),
                    joined(states, np.int8), emails, joined(phone_rows, np.int32), joined(phones, np.int64))


@dataclass
class _Verdicts:
    """Every row's fate, decided before the second reading."""

    status: npt.NDArray[np.uint8]
    flags: npt.NDArray[np.uint16]
    dnc_states: npt.NDArray[np.uint64]  # states whose list holds one of the row's numbers
    duplicate_of: npt.NDArray[np.int32]  # earlier row (0-based); -1 the CRM; -2 none
    list_dates: dict[str, str]


def _any_per_row(rows: int, phone_rows: npt.NDArray[np.int32], values: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    found = np.zeros(rows, dtype=np.bool_)
    found[phone_rows[values]] = True
    return found


async def _crm_matches(
    conn: asyncpg.Connection, import_id: str, phones: npt.NDArray[np.int64], emails: list[str]
) -> tuple[set[int], set[str]]:
    """Which of these phones (10-digit integers) and e-mails a lead in the CRM already has
    (leads of this same import excepted: a retried import is not its own duplicate).

    The smaller side travels: a CRM with fewer leads than the file has unique numbers sends its
    phones and e-mails here, where numpy and a set compare them; a larger CRM is sent the file's
    (two array parameters, hash-joined in PostgreSQL). PostgreSQL's row estimate decides."""

    def distinct() -> tuple[npt.NDArray[np.int64], set[str]]:  # a few tenths of a second for a million rows
        return np.unique(phones), set(emails)

    unique_phones, unique_emails = await asyncio.to_thread(distinct)
    crm_rows = await conn.fetchval("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'leads'::regclass")
    if crm_rows is not None and crm_rows < len(unique_phones):
        known = await conn.fetch(
            "SELECT substr(p, 3)::bigint FROM leads l CROSS JOIN LATERAL unnest(l.phones) AS p "
            "WHERE p LIKE '+1%' AND l.import_id IS DISTINCT FROM $1",
            import_id,
        )
        crm_phones = np.fromiter((r[0] for r in known), dtype=np.int64, count=len(known))
        known_emails = await conn.fetch(
            "SELECT DISTINCT lower(email) FROM leads WHERE email IS NOT NULL AND import_id IS DISTINCT FROM $1",
            import_id,
        )
        return (set(unique_phones[np.isin(unique_phones, crm_phones)].tolist()),
                {str(r[0]) for r in known_emails if r[0] in unique_emails})
    phone_rows = await conn.fetch(
        """
        SELECT DISTINCT w.n FROM unnest($1::bigint[]) AS w(n)
        JOIN (SELECT substr(p, 3)::bigint AS n
              FROM leads l CROSS JOIN LATERAL unnest(l.phones) AS p
              WHERE p LIKE '+1%' AND l.import_id IS DISTINCT FROM $2) c ON c.n = w.n
        """,
        unique_phones.tolist(),
        import_id,
    )
    email_rows = await conn.fetch(
        """
        SELECT DISTINCT w.e FROM unnest($1::text[]) AS w(e)
        JOIN (SELECT lower(email) AS e FROM leads
              WHERE email IS NOT NULL AND import_id IS DISTINCT FROM $2) c ON c.e = w.e
        """,
        list(unique_emails),
        import_id,
    )
    return {int(r[0]) for r in phone_rows}, {str(r[0]) for r in email_rows}


def _duplicates(
    candidates: npt.NDArray[np.bool_],
    numbers: _Numbers,
    crm_phones: set[int],
    crm_emails: set[str],
) -> npt.NDArray[np.int32]:
    """-2: not a duplicate; -1: a CRM lead has one of its phones or its e-mail; N: row N (0-based)
    imported earlier in the file has one. Rows are taken in file order, and only a row that is
    imported claims its phones and e-mail (a duplicate's other numbers stay free)."""
    duplicate_of = np.full(numbers.rows, -2, dtype=np.int32)
    # Only rows sharing a phone or e-mail with another row, or with the CRM, can be (or make) a
    # duplicate; find them in numpy, then take just those rows in order.
    candidate_phones = candidates[numbers.phone_rows]
    values, counts = np.unique(numbers.phones[candidate_phones], return_counts=True)
    shared = np.concatenate([values[counts > 1], np.fromiter(crm_phones, dtype=np.int64, count=len(crm_phones))])
    involved = np.zeros(numbers.rows, dtype=np.bool_)
    involved[numbers.phone_rows[candidate_phones & np.isin(numbers.phones, shared)]] = True
    emails = numbers.emails
    repeated = Counter(e for e, ok in zip(emails, candidates.tolist(), strict=True) if ok and e is not None)
    shared_emails = {e for e, n in repeated.items() if n > 1} | crm_emails
    if shared_emails:
        involved |= np.array([e is not None and e in shared_emails for e in emails], dtype=np.bool_)
    starts = numbers.row_starts()
    phones = numbers.phones
    seen: dict[int, int] = {}
    seen_email: dict[str, int] = {}
    for row in np.flatnonzero(involved & candidates).tolist():
        mine = phones[starts[row] : starts[row + 1]].tolist()
        email = emails[row]
        if any(p in crm_phones for p in mine) or (email is not None and email in crm_emails):
            duplicate_of[row] = -1
            continue
        earlier = [seen[p] for p in mine if p in seen]
        if email is not None and email in seen_email:
            earlier.append(seen_email[email])
        if earlier:
            duplicate_of[row] = min(earlier)
            continue
        for p in mine:
            seen[p] = row
        if email is not None:
            seen_email[email] = row
    return duplicate_of


async def _verdicts(
    numbers: _Numbers,
    conn: asyncpg.Connection,
    plan: ImportPlan,
    scrubber: Scrubber,
    progress: Progress | None,
    seconds: dict[str, float],
) -> _Verdicts:
    clock = _Stopwatch(seconds)
    rows = numbers.rows
    flags = np.zeros(rows, dtype=np.uint16)
    located = await asyncio.to_thread(
        batch.locate, numbers.phones, numbers.zips[numbers.phone_rows], numbers.states[numbers.phone_rows]
    )
    bad_number = _any_per_row(rows, numbers.phone_rows, ~located.ok) | numbers.phone_problem
    flags[numbers.field_problem] |= _FLAG[RowProblem.INVALID_FIELD]
    flags[bad_number] |= _FLAG[RowProblem.INVALID_NUMBER]
    valid = ~(numbers.field_problem | bad_number)
    valid_phones = valid[numbers.phone_rows]
    clock.lap("locate")
    if progress:
        progress("duplicates", 0, 1)
    emails = await asyncio.to_thread(
        lambda: [email for email, ok in zip(numbers.emails, valid.tolist(), strict=True) if ok and email is not None]
    )
    crm_phones, crm_emails = await _crm_matches(conn, plan.import_id, numbers.phones[valid_phones], emails)
    clock.lap("crm_duplicates")
    duplicate_of = await asyncio.to_thread(_duplicates, valid, numbers, crm_phones, crm_emails)
    clock.lap("file_duplicates")
    flags[duplicate_of == -1] |= _FLAG[RowProblem.DUPLICATE_IN_CRM]
    flags[duplicate_of >= 0] |= _FLAG[RowProblem.DUPLICATE_IN_FILE]
    scrubbed = valid & (duplicate_of == -2)
    if progress:
        progress("scrub", 0, 1)
    chosen = scrubbed[numbers.phone_rows]
    hits = await scrubber.scrub(numbers.phones[chosen], located.states[chosen])
    clock.lap("lists")
    chosen_rows = numbers.phone_rows[chosen]

    def mark(problem: RowProblem, per_phone: npt.NDArray[np.bool_]) -> None:
        on = np.zeros(rows, dtype=np.bool_)
        on[chosen_rows[per_phone]] = True
        flags[on] |= _FLAG[problem]

    mark(RowProblem.DNC_FEDERAL, hits.federal)
    mark(RowProblem.DNC_INTERNAL, hits.internal)
    mark(RowProblem.LITIGATOR, hits.litigator)
    mark(RowProblem.OPTED_OUT, hits.optout)
    mark(RowProblem.UNKNOWN_LOCATION, located.unknown_location[chosen])
    dnc_states = np.zeros(rows, dtype=np.uint64)
    for state, per_phone in hits.states.items():
        on = np.zeros(rows, dtype=np.bool_)
        on[chosen_rows[per_phone]] = True
        dnc_states[on] |= np.uint64(1 << batch.STATE_BIT[state])
        flags[on] |= _FLAG[RowProblem.DNC_STATE]
    status = np.full(rows, RowStatus.ACCEPTED, dtype=np.uint8)
    status[scrubbed & (flags != 0)] = RowStatus.REJECTED
    status[duplicate_of != -2] = RowStatus.DUPLICATE
    status[~valid] = RowStatus.INVALID
    if progress:
        progress("scrub", 1, 1)
    return _Verdicts(status, flags, dnc_states, duplicate_of, hits.list_dates)


def _counts(verdicts: _Verdicts) -> ImportCounts:
    status = verdicts.status
    counts = ImportCounts(
        rows=len(status),
        accepted=int((status == RowStatus.ACCEPTED).sum()),
        invalid=int((status == RowStatus.INVALID).sum()),
        duplicate=int((status == RowStatus.DUPLICATE).sum()),
        rejected=int((status == RowStatus.REJECTED).sum()),
    )
    for problem, bit in _FLAG.items():
        counts.reasons[problem.value] = int((verdicts.flags & bit != 0).sum())
    for state, bit in batch.STATE_BIT.items():
        on = int((verdicts.dnc_states >> np.uint64(bit) & np.uint64(1)).sum())
        if on:
            counts.dnc_states[state] = on
    return counts


@cache
def _reasons(flags: int) -> str:
    return ";".join(problem.value for problem, bit in _FLAG.items() if flags & bit)


class _Details:
    """The report's detail text of a row that is not accepted (list texts memoised: a million
    rejected rows share a few dozen)."""

    def __init__(self, verdicts: _Verdicts, rules: RowRules) -> None:
        self.verdicts = verdicts
        self.rules = rules
        self._lists: dict[tuple[int, int], str] = {}

    def __call__(self, row: int, cells: list[str]) -> str:
        status = int(self.verdicts.status[row])
        if status == RowStatus.INVALID:
            problem = self.rules.problem(cells)
            if problem is not None:
                return problem[1]
            for index in self.rules.phone_columns:
                raw = cells[index].strip() if index < len(cells) else ""
                if raw and not batch.classify(np.array([batch.national_number(raw)], dtype=np.int64)).ok[0]:
                    return f"{raw[:40]!r} is not a valid, dialable US number"
            return "a phone number is not a valid, dialable US number"
        if status == RowStatus.DUPLICATE:
            earlier = int(self.verdicts.duplicate_of[row])
            if earlier == -1:
                return "a lead in the CRM has the same phone or e-mail"
            return f"same phone or e-mail as row {earlier + 1}"
        key = (int(self.verdicts.flags[row]), int(self.verdicts.dnc_states[row]))
        text = self._lists.get(key)
        if text is None:
            text = self._lists[key] = self._list_text(*key)
        return text

    @staticmethod
    def _list_text(flags: int, dnc_states: int) -> str:
        parts = [text for problem, text in _LIST_FLAGS if flags & _FLAG[problem]]
        states = batch.states_of(dnc_states)
        if states:
            parts.append(f"on the {', '.join(states)} state DNC list{'s' if len(states) > 1 else ''}")
        if flags & _FLAG[RowProblem.UNKNOWN_LOCATION]:
            parts.append("no time zone can be known (ZIP code not in the offline data, or a non-geographic "
                         "number without an address)")
        return "; ".join(parts)


def _csv_field(text: str) -> str:
    """One CSV field, quoted when it must be (RFC 4180)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _report_phone(rules: RowRules, cells: list[str], numbers: list[int]) -> str:
    """The row's first phone in E.164, or as written when it is unreadable."""
    if numbers and numbers[0] != batch.INVALID:
        return batch.e164(numbers[0])
    for index in rules.phone_columns:
        raw = cells[index].strip()
        if raw:
            return raw[:40]
    return ""


async def _second_pass(
    rows: _Rows,
    rules: RowRules,
    plan: ImportPlan,
    numbers: _Numbers,
    verdicts: _Verdicts,
    report: IO[bytes] | None,  # the report file (CSV), or None for no report
    consents: IO[bytes],  # a file for the consent_records rows (CSV of CONSENT_COLUMNS)
    progress: Progress | None,
) -> AsyncIterator[bytes]:
    """The `leads` rows (LEAD_COLUMNS) of the accepted rows as CSV for COPY, a chunk at a time;
    their consent rows to `consents`; the report line of every row to `report`.

    CSV text rather than binary records: the csv module writes a chunk in C, where asyncpg's
    binary COPY encodes every value in Python (a third of the write time, measured). None is
    written as an unquoted empty field, which COPY reads as NULL; no text value is empty."""
    status = verdicts.status
    starts = numbers.row_starts()
    # Each row's first number (INVALID when it has none): the report's phone column.
    has_phone = starts[1:] > starts[:-1]
    first_phones = np.where(has_phone, numbers.phones[np.minimum(starts[:-1], max(len(numbers.phones) - 1, 0))]
                            if len(numbers.phones) else batch.INVALID, batch.INVALID)
    details = _Details(verdicts, rules)
    iso_times: dict[datetime, str] = {}
    # Leads and consents are written a chunk at a time into a buffer, then out in one write.
    buffer, consent_buffer = io.StringIO(), io.StringIO()
    leads_csv, consents_csv = csv.writer(buffer), csv.writer(consent_buffer)
    names = RowStatus.NAMES

    def drain(text: io.StringIO) -> bytes:
        data = text.getvalue().encode()
        text.seek(0)
        text.truncate()
        return data

    base = 0
    for lines, chunk in rows.chunks():
        end = base + len(chunk)
        if end > len(status):
            raise ImportInputError("the file changed while it was being imported: import it again")
        rules.pad(chunk)
        chunk_status = status[base:end]
        accepted = np.flatnonzero(chunk_status == RowStatus.ACCEPTED).tolist()
        if accepted:
            phones = numbers.phones[starts[base] : starts[end]].tolist()
            offsets = (starts[base : end + 1] - starts[base]).tolist()
            leads = rules.leads([chunk[i] for i in accepted], [phones[offsets[i] : offsets[i + 1]] for i in accepted])
            consent_rows = []
            lead_rows = []
            for i, lead in zip(accepted, leads, strict=True):
                lead_id = f"{plan.import_id}-{base + i + 1}"
                e164s = cast(list[str], lead[2])
                kind, obtained, evidence = lead[11:14]
                if obtained is not None:
                    moment = cast(datetime, obtained)
                    if (when := iso_times.get(moment)) is None:
                        when = iso_times[moment] = moment.isoformat()
                    consent_rows.append((f"{lead_id}:consent", lead_id, kind, e164s[0], when, lead[9], evidence))
                # An E.164 number needs no quoting inside an array literal.
                lead_rows.append((lead_id, lead[0], lead[1], "{" + ",".join(e164s) + "}", *lead[3:11],
                                  plan.import_id, plan.list_id))
            consents_csv.writerows(consent_rows)
            consents.write(drain(consent_buffer))
            leads_csv.writerows(lead_rows)
            yield drain(buffer)
        if report is not None:
            codes = chunk_status.tolist()
            flags = verdicts.flags[base:end].tolist()
            firsts = first_phones[base:end].tolist()
            out = []
            for i, code in enumerate(codes):
                number = base + i + 1
                if code == RowStatus.ACCEPTED:  # nothing in an accepted row's line needs CSV quoting
                    out.append(f"{number},{lines[i]},accepted,,{plan.import_id}-{number},+1{firsts[i]:010d},\r\n")
                else:
                    phone = f"+1{firsts[i]:010d}" if firsts[i] >= 0 and code != RowStatus.INVALID else \
                        _report_phone(rules, chunk[i], [firsts[i]])
                    out.append(f"{number},{lines[i]},{names[code]},{_reasons(flags[i])},,{_csv_field(phone)},"
                               f"{_csv_field(details(base + i, chunk[i]))}\r\n")
            report.write("".join(out).encode())
        base = end
        if progress:
            progress("write", rows.done, rows.size)
        await asyncio.sleep(0)
    if base != len(status):
        raise ImportInputError("the file changed while it was being imported: import it again")
    if progress:
        progress("write", rows.size, rows.size)


LEAD_COLUMNS = ("lead_id", "first_name", "last_name", "phones", "email", "address_line1", "address_line2",
                "city", "state", "zip", "source", "custom_fields", "import_id", "list_id")
CONSENT_COLUMNS = ("consent_id", "lead_id", "kind", "phone", "obtained_at", "source", "evidence_ref")


async def _write(
    conn: asyncpg.Connection,
    plan: ImportPlan,
    records: AsyncIterator[bytes],
    consents: IO[bytes],
    accepted_rows: npt.NDArray[np.bool_],
    seconds: dict[str, float],
) -> None:
    """The leads, streamed by COPY while the file is read a second time (PostgreSQL inserts and
    indexes them on its own core meanwhile), then their consent rows and campaign memberships."""
    clock = _Stopwatch(seconds)
    await conn.copy_to_table("leads", source=records, columns=LEAD_COLUMNS, format="csv")
    clock.lap("copy_leads")
    consents.flush()
    consents.seek(0)
    await conn.copy_to_table("consent_records", source=cast(BinaryIO, consents), columns=CONSENT_COLUMNS,
                             format="csv")
    clock.lap("copy_consents")
    # The campaign named, and every campaign the list is assigned to (its memberships name the list,
    # as `dialer lists add-leads` makes them).
    targets: dict[str, str | None] = {}
    if plan.list_id is not None:
        for row in await conn.fetch("SELECT campaign_id FROM campaign_lists WHERE list_id = $1", plan.list_id):
            targets[row["campaign_id"]] = plan.list_id
    if plan.campaign_id is not None:
        targets.setdefault(plan.campaign_id, None)
    rows = np.flatnonzero(accepted_rows) + 1
    for campaign, list_id in sorted(targets.items()):
        # membership_id = campaign_id || ':' || lead_id, as every campaign_lead record; the lead ids
        # follow from the accepted rows' numbers, so no index on leads.import_id is needed.
        quoted = _csv_field(campaign)
        listed = "" if list_id is None else _csv_field(list_id)

        async def memberships(campaign: str = campaign, quoted: str = quoted, listed: str = listed
                              ) -> AsyncIterator[bytes]:
            for start in range(0, len(rows), 50_000):
                yield "".join(f"{_csv_field(f'{campaign}:{plan.import_id}-{row}')},{quoted},{plan.import_id}-{row},"
                              f"{listed}\n" for row in rows[start : start + 50_000].tolist()).encode()
                await asyncio.sleep(0)

        await conn.copy_to_table("campaign_leads", source=memberships(),
                                 columns=("membership_id", "campaign_id", "lead_id", "list_id"), format="csv")
        clock.lap("campaign")


async def _drain(records: AsyncIterator[bytes]) -> None:
    async for _ in records:
        pass


def freshness_warnings(book: RuleBook, list_dates: Mapping[str, str], now: datetime) -> tuple[str, ...]:
    """Lists the scrub could not fully rely on (stale or missing copies): the import still runs,
    and the gate blocks the leads those lists cover at dial time until a current copy is loaded."""
    judged = list_freshness(book, list_dates, now)
    stale = [f"{describe_list(f.list_name)} ({f.copy_date})" for f in judged if f.status is FreshnessStatus.STALE]
    missing = [describe_list(f.list_name) for f in judged
               if f.status is FreshnessStatus.MISSING and f.list_name != "litigator"]
    warnings = []
    if stale:
        warnings.append(f"stale list copies (load current ones before dialing): {', '.join(stale)}")
    if missing:
        warnings.append(f"no copy loaded, so not scrubbed against: {', '.join(missing)}")
    return tuple(warnings)


async def committed_outcome(conn: asyncpg.Connection, import_id: str) -> ImportOutcome | None:
    row = await conn.fetchrow("SELECT counts, list_dates FROM lead_imports WHERE import_id = $1", import_id)
    if row is None:
        return None
    return ImportOutcome(import_id, ImportCounts.from_json(json.loads(row["counts"])), json.loads(row["list_dates"]),
                         already_committed=True)


async def import_leads(
    plan: ImportPlan,
    conn: asyncpg.Connection,
    scrubber: Scrubber,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ImportOutcome:
    """Run one import (see the module docstring). `conn` is used for one transaction.

    Raises `ImportInputError` for a file that cannot be imported (nothing is written); database
    and Redis errors propagate (nothing is written; the import can be retried as it is).
    """
    now = now or datetime.now(UTC)
    seconds: dict[str, float] = {}
    started, started_cpu = time.perf_counter(), time.process_time()
    clock = _Stopwatch(seconds)
    part = plan.report.with_name(plan.report.name + ".part") if plan.report else None
    previous = await committed_outcome(conn, plan.import_id)
    if previous is not None:
        if part is not None and plan.report is not None and part.exists():
            os.replace(part, plan.report)  # committed, then interrupted before the rename
        return previous
    try:
        with plan.source.open("rb") as handle:
            layout = read_layout(handle.read(64 * 1024))
    except OSError as error:
        raise ImportInputError(f"cannot read {plan.source.name}: {error.strerror}") from None
    rules = rules_for(plan, layout, now)
    rows = _Rows(plan.source, layout)
    numbers = await _first_pass(rows, rules, progress)
    clock.lap("read")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LEAD_IMPORT_LOCK)
        if (previous := await committed_outcome(conn, plan.import_id)) is not None:
            return previous  # another worker committed it while this one was reading
        clock.lap("lock")
        verdicts = await _verdicts(numbers, conn, plan, scrubber, progress, seconds)
        counts = _counts(verdicts)
        clock = _Stopwatch(seconds)
        report_file = part.open("wb") if part is not None else None
        try:
            if report_file is not None:
                report_file.write((",".join(REPORT_COLUMNS) + "\r\n").encode())
            with tempfile.TemporaryFile() as consent_file:
                records = _second_pass(rows, rules, plan, numbers, verdicts, report_file, consent_file, progress)
                if counts.accepted:
                    await _write(conn, plan, records, consent_file, verdicts.status == RowStatus.ACCEPTED,
                                 seconds)
                else:
                    await _drain(records)
            if report_file is not None:
                report_file.flush()
                os.fsync(report_file.fileno())  # on disk before the commit that makes it final
        finally:
            if report_file is not None:
                report_file.close()
        await conn.execute(
            "INSERT INTO lead_imports (import_id, label, campaign_id, mapping, counts, list_dates, started_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            plan.import_id, plan.label, plan.campaign_id, json.dumps(plan.mapping.to_json()),
            json.dumps(counts.to_json()), json.dumps(verdicts.list_dates), now,
        )
        clock = _Stopwatch(seconds)
    clock.lap("commit")
    if part is not None and plan.report is not None:
        os.replace(part, plan.report)
    seconds["total"] = time.perf_counter() - started
    seconds["total_cpu"] = time.process_time() - started_cpu
    return ImportOutcome(plan.import_id, counts, verdicts.list_dates,
                         freshness_warnings(scrubber.book, verdicts.list_dates, now), seconds=seconds)


def new_import_id() -> str:
    return f"imp_{os.urandom(6).hex()}"


def check_file(plan: ImportPlan, head: bytes, now: datetime | None = None) -> CsvLayout:
    """The header and mapping check that can be made before the file is read: raises
    `ImportInputError` for an empty file, a mapping naming a column the header lacks, etc."""
    layout = read_layout(head)
    rules_for(plan, layout, now or datetime.now(UTC))
    return layout


__all__ = [
    "REPORT_COLUMNS",
    "ImportCounts",
    "ImportInputError",
    "ImportOutcome",
    "ImportPlan",
    "Scrubber",
    "check_file",
    "import_leads",
    "new_import_id",
    "read_layout",
]

