"""A recording's life after the call: legal hold, purge at the end of retention, integrity
verification over the years, and KEK rotation.

Holds and purges decide on the row as it is in PostgreSQL now (under a row lock), so they talk
to PostgreSQL directly rather than through the outbox: a purge that cannot see the row does not
happen. Each writes its audit entry (`recording_events`) in the same transaction as the change.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from recordings.archive import data_key_key, note_kek
from recordings.crypto import ARCHIVE_KEYS_FILE, KEY_ID_BYTES, Keyring, RecordingCryptoError
from recordings.crypto import MAGIC as FORMAT1_MAGIC
from recordings.envelope import WrappedDataKey, rewrap_data_key
from recordings.reader import FileRef, RecordingReader, RecordingUnavailable
from recordings.retention import PurgeRefusal, purge_check
from recordings.storage import OutsideArchive, RecordingStorage

LAST_VERIFICATION = "last-verification.json"
_AUDIO_SUFFIXES = (".sealed", ".dek", ".opus", ".wav", ".mp3", ".partial")


class LifecycleError(Exception):
    """A lifecycle action refused for a reason the user can act on (the message says which)."""


@dataclass(frozen=True)
class _Row:
    recording_id: str
    call_id: str | None
    storage_uri: str
    sha256: str
    format: str
    retain_until: datetime | None
    legal_hold: bool
    legal_hold_by: str | None
    legal_hold_reason: str | None
    purged_at: datetime | None


_ROW_COLUMNS = ", ".join(_Row.__dataclass_fields__)


async def _row(conn: asyncpg.Connection, recording_id: str, *, lock: bool = False) -> _Row | None:
    row = await conn.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM recordings WHERE recording_id = $1" + (" FOR UPDATE" if lock else ""),
        recording_id)
    return None if row is None else _Row(**dict(row))


async def _event(conn: asyncpg.Connection, recording_id: str, action: str, actor: str, reason: str | None,
                 at: datetime, details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO recording_events (event_id, recording_id, action, actor, reason, details, happened_at) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        uuid.uuid4(), recording_id, action, actor, reason, json.dumps(details or {}), at)


# -- legal hold -------------------------------------------------------------------------------
async def set_legal_hold(conn: asyncpg.Connection, recording_id: str, *, held: bool, by: str, reason: str,
                         now: datetime) -> None:
    """Put a recording under legal hold (no purge, whatever its retention) or release it."""
    if not by.strip() or not reason.strip():
        raise LifecycleError("a legal hold says who sets or releases it and why")
    async with conn.transaction():
        row = await _row(conn, recording_id, lock=True)
        if row is None:
            raise LifecycleError(f"no recording {recording_id}")
        if row.purged_at is not None:
            raise LifecycleError(f"{recording_id} was purged at {row.purged_at.isoformat()}: nothing left to hold")
        if row.legal_hold == held:
            raise LifecycleError(f"{recording_id} is {'already' if held else 'not'} under legal hold")
        await conn.execute(
            "UPDATE recordings SET legal_hold = $2, legal_hold_by = $3, legal_hold_reason = $4, legal_hold_at = $5 "
            "WHERE recording_id = $1",
            recording_id, held, by if held else None, reason if held else None, now if held else None)
        await _event(conn, recording_id, "legal_hold_set" if held else "legal_hold_released", by, reason, now)


# -- purge --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PurgeOutcome:
    recording_id: str
    purged: bool
    refusal: PurgeRefusal | str | None
    reason: str


def _destroy(storage: RecordingStorage, key: str, recording_id: str) -> dict[str, bool]:
    # The data key first: from that instant the audio (and every backup of it) is unreadable,
    # even if deleting the file then fails (NIST SP 800-88 Rev. 1, 2.6 cryptographic erase).
    key_deleted = storage.delete(data_key_key(key, recording_id))
    file_deleted = storage.delete(key)
    return {"data_key_destroyed": key_deleted, "file_deleted": file_deleted}


async def purge(conn: asyncpg.Connection, storage: RecordingStorage, *, now: datetime, by: str,
                dry_run: bool = False, recording_ids: Iterable[str] | None = None,
                limit: int = 1000) -> list[PurgeOutcome]:
    """Delete expired recordings not under legal hold: data key and file destroyed, the row
    kept as a tombstone (`purged_at`), an audit entry written. Named recordings that may not go
    are refused with the reason; `dry_run` only says what would go."""
    if recording_ids is None:
        rows = await conn.fetch(
            "SELECT recording_id FROM recordings WHERE purged_at IS NULL AND NOT legal_hold "
            "AND retain_until <= $1 ORDER BY retain_until, recording_id LIMIT $2", now, limit)
        candidates = [row["recording_id"] for row in rows]
    else:
        candidates = list(dict.fromkeys(recording_ids))
    outcomes = []
    for recording_id in candidates:
        outcomes.append(await _purge_one(conn, storage, recording_id, now=now, by=by, dry_run=dry_run))
    return outcomes


async def _purge_one(conn: asyncpg.Connection, storage: RecordingStorage, recording_id: str, *, now: datetime,
                     by: str, dry_run: bool) -> PurgeOutcome:
    async with conn.transaction():
        # Locked: a hold set while this runs waits for it, or wins if it came first.
        row = await _row(conn, recording_id, lock=not dry_run)
        if row is None:
            return PurgeOutcome(recording_id, False, "not_found", f"no recording {recording_id}")
        check = purge_check(recording_id=recording_id, retain_until=row.retain_until, legal_hold=row.legal_hold,
                            held_by=row.legal_hold_by, hold_reason=row.legal_hold_reason, purged_at=row.purged_at,
                            now=now)
        if not check.allowed:
            return PurgeOutcome(recording_id, False, check.refusal, check.reason)
        try:
            key = storage.key_for_uri(row.storage_uri)
        except OutsideArchive:
            return PurgeOutcome(recording_id, False, "not_in_archive", f"{recording_id} is not in this archive")
        if dry_run:
            return PurgeOutcome(recording_id, False, None, check.reason)
        # Destroyed inside the transaction: if the tombstone then fails to commit, a second
        # run finds the file already gone and completes it.
        details: dict[str, Any] = dict(await asyncio.to_thread(_destroy, storage, key, recording_id))
        details.update({"storage_uri": row.storage_uri, "sha256": row.sha256.strip(),
                        "retain_until": row.retain_until.isoformat() if row.retain_until else None})
        await conn.execute(
            "UPDATE recordings SET purged_at = $2, purged_by = $3, purge_reason = $4 WHERE recording_id = $1",
            recording_id, now, by, check.reason)
        await _event(conn, recording_id, "purged", by, check.reason, now, details)
        return PurgeOutcome(recording_id, True, None, check.reason)


# -- verification -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    kind: str
    """`missing` (a row without its file or key), `damaged` (fails its tags or checksum),
    `orphaned` (a file without a row, or still there after its purge)."""
    recording_id: str
    detail: str


@dataclass
class VerificationReport:
    started_at: datetime
    since: datetime | None
    finished_at: datetime | None = None
    checked: int = 0
    ok: int = 0
    elsewhere: int = 0
    """Rows naming a file outside this archive (another host's): not checked here."""
    problems: list[Problem] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for problem in self.problems if problem.kind == kind)

    def figures(self) -> dict[str, object]:
        return {"started_at": self.started_at.isoformat(), "finished_at": (self.finished_at or self.started_at).isoformat(),
                "since": self.since.isoformat() if self.since else None, "checked": self.checked, "ok": self.ok,
                "elsewhere": self.elsewhere,
                "missing": self.count("missing"), "damaged": self.count("damaged"),
                "orphaned": self.count("orphaned")}


def _check_one(reader: RecordingReader, recording_id: str, storage_uri: str, sha256: str, fmt: str) -> Problem | None:
    try:
        with reader.open(FileRef(recording_id, storage_uri, sha256, fmt)) as opened:
            opened.check()
    except RecordingUnavailable as error:
        kind = "damaged" if error.error == "recording_integrity_failed" else "missing"
        return Problem(kind, recording_id, str(error))
    return None


def _recording_id_of(key: str) -> str:
    return key.rpartition("/")[2].split(".")[0]


def _day_of(key: str) -> date | None:
    parts = key.split("/")
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2])) if len(parts) >= 4 else None
    except ValueError:
        return None


async def verify(conn: asyncpg.Connection, reader: RecordingReader, *, since: datetime | None = None,
                 now: datetime | None = None, batch: int = 500) -> VerificationReport:
    """Re-read every sealed recording (recorded since `since`, or all): authenticate every
    segment and compare the audio's SHA-256 with the row. Then look for orphans: files no row
    names, and files of purged recordings still on disk. Records the run (table and
    `last-verification.json` for the metric)."""
    report = VerificationReport(started_at=now or datetime.now(UTC), since=since)
    storage = reader.store
    async with conn.transaction():
        cursor = conn.cursor(
            "SELECT recording_id, storage_uri, sha256, format FROM recordings WHERE purged_at IS NULL "
            "AND ($1::timestamptz IS NULL OR recorded_at >= $1) ORDER BY recorded_at, recording_id", since)
        async for row in cursor:
            try:
                storage.key_for_uri(row["storage_uri"])
            except OutsideArchive:
                report.elsewhere += 1
                continue
            report.checked += 1
            problem = await asyncio.to_thread(_check_one, reader, row["recording_id"], row["storage_uri"],
                                              row["sha256"].strip(), row["format"])
            if problem is None:
                report.ok += 1
            else:
                report.problems.append(problem)
    keys = await asyncio.to_thread(lambda: list(_keys_since(storage, since)))
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        ids = sorted({_recording_id_of(key) for key in chunk})
        rows = await conn.fetch("SELECT recording_id, purged_at FROM recordings WHERE recording_id = ANY($1::text[])",
                                ids)
        known = {row["recording_id"]: row["purged_at"] for row in rows}
        for key in chunk:
            recording_id = _recording_id_of(key)
            if key.endswith(".partial"):
                report.problems.append(Problem("orphaned", recording_id, f"{key}: an unfinished write"))
            elif recording_id not in known:
                report.problems.append(Problem("orphaned", recording_id, f"{key}: no recordings row names it"))
            elif known[recording_id] is not None:
                report.problems.append(Problem("orphaned", recording_id, f"{key}: still there after the purge"))
    report.finished_at = datetime.now(UTC) if now is None else now
    figures = report.figures()
    await conn.execute(
        "INSERT INTO recording_verifications (verification_id, started_at, finished_at, since, checked, ok, missing, "
        "damaged, orphaned, problems) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
        uuid.uuid4(), report.started_at, report.finished_at, since, report.checked, report.ok,
        figures["missing"], figures["damaged"], figures["orphaned"],
        json.dumps([asdict(problem) for problem in report.problems[:1000]]))
    await asyncio.to_thread(storage.put_small, LAST_VERIFICATION, json.dumps(figures, indent=1).encode())
    return report


def _keys_since(storage: RecordingStorage, since: datetime | None) -> Iterator[str]:
    for key in storage.keys(_AUDIO_SUFFIXES):
        if key in (ARCHIVE_KEYS_FILE, LAST_VERIFICATION):
            continue
        day = _day_of(key)
        if since is not None and day is not None and day < since.date():
            continue
        yield key


@dataclass(frozen=True)
class VerificationFigures:
    """The last verification's figures, for the `dialer_recordings_verification_*` metrics."""

    finished_at: datetime
    checked: int
    ok: int
    missing: int
    damaged: int
    orphaned: int


def last_verification(storage: RecordingStorage) -> VerificationFigures | None:
    """What the last `dialer recording verify` found (None before the first). Cheap: one small read."""
    try:
        doc = json.loads(storage.get_small(LAST_VERIFICATION))
    except FileNotFoundError:
        return None
    except ValueError:
        return None
    return VerificationFigures(datetime.fromisoformat(doc["finished_at"]), int(doc["checked"]), int(doc["ok"]),
                               int(doc["missing"]), int(doc["damaged"]), int(doc["orphaned"]))


# -- KEK rotation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RotationReport:
    new_kek_id: str
    rewrapped: dict[str, str]
    """recording id -> the KEK that wrapped its data key before."""
    retired: tuple[str, ...]
    kept_for_format1: tuple[str, ...]
    """Old KEKs kept because format-1 files are sealed with them directly."""


def _format1_key_ids(storage: RecordingStorage) -> set[str]:
    needed = set()
    for key in storage.keys((".sealed",)):
        handle = storage.open(key)
        try:
            head = handle.read_at(0, len(FORMAT1_MAGIC) + KEY_ID_BYTES)
        finally:
            handle.close()
        if head.startswith(FORMAT1_MAGIC) and len(head) == len(FORMAT1_MAGIC) + KEY_ID_BYTES:
            needed.add(head[len(FORMAT1_MAGIC) :].hex())
    return needed


def rewrap_all(storage: RecordingStorage, keyring: Keyring) -> dict[str, str]:
    """Re-wrap every data key not yet under the keyring's current KEK (no audio is rewritten).
    Each `.dek` file is replaced atomically: a crash leaves every recording readable."""
    done: dict[str, str] = {}
    for key in storage.keys((".dek",)):
        wrapped = WrappedDataKey.from_bytes(storage.get_small(key))
        if wrapped.kek_id == keyring.current_kek_id:
            continue
        storage.put_small(key, rewrap_data_key(keyring, wrapped).to_bytes())
        done[wrapped.recording_id] = wrapped.kek_id
    return done


def rotate_keys(storage: RecordingStorage, keyring: Keyring, *, retire: bool = False) -> tuple[Keyring, RotationReport]:
    """A new KEK becomes current; every data key is re-wrapped under it; with `retire`, the
    old KEKs' files are deleted, except those format-1 files still need. Blocking."""
    rotated = keyring.rotated()
    note_kek(storage, rotated.current_kek_id)
    rewrapped = rewrap_all(storage, rotated)
    format1 = _format1_key_ids(storage)
    leftover = [key for key in storage.keys((".dek",))
                if WrappedDataKey.from_bytes(storage.get_small(key)).kek_id != rotated.current_kek_id]
    if leftover:
        raise RecordingCryptoError(f"{len(leftover)} data keys were not re-wrapped (written meanwhile?): run again")
    needed = {rotated.current_kek_id, *format1}
    storage.put_small(ARCHIVE_KEYS_FILE, json.dumps({"kek_ids": sorted(needed)}, indent=1).encode())
    retired: tuple[str, ...] = ()
    if retire:
        retired = tuple(sorted(rotated.key_ids - needed))
        rotated = rotated.retire(retired)
    return rotated, RotationReport(rotated.current_kek_id, rewrapped, retired,
                                   tuple(sorted(format1 - {rotated.current_kek_id})))


async def record_rotation(conn: asyncpg.Connection, report: RotationReport) -> int:
    """Point the rows of re-wrapped recordings at their new KEK (`encryption_key_id`)."""
    result = await conn.execute(
        "UPDATE recordings SET encryption_key_id = $1 WHERE recording_id = ANY($2::text[])",
        report.new_kek_id, list(report.rewrapped))
    return int(result.split()[-1])
