"""The durable outbox in front of the CRM tables (docs/decisions.md, decision 9).

`await outbox.put(kind, record)` validates the record, writes it to a local SQLite file
(WAL journal, synchronous=FULL) and returns once that write is on disk. A delivery task
applies pending records to PostgreSQL in id order, in batches, and marks them delivered.

Failure handling:
- PostgreSQL down or unreachable: records stay pending; delivery retries with backoff.
- Process restart: a new `Outbox` on the same state directory re-reads pending records.
- Crash between the PostgreSQL commit and the local "delivered" mark: each record's
  `(source_id, outbox_id)` is inserted into `outbox_applied` in the same transaction as the
  record itself, so a re-sent record is recognised and skipped. Delivery is exactly once.
- A record PostgreSQL refuses for its content (SQLSTATE class 22 data exception or 23
  integrity violation) is set aside as `rejected` with the error, so one bad row cannot block
  every later one; `requeue_rejected()` puts them back after a fix.

One process owns a state directory's outbox at a time (an exclusive file lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import structlog

from crm_bridge.apply import apply_record
from crm_bridge.audit_log import ChainHeads, lock_chains
from crm_bridge.backoff import Backoff
from crm_bridge.kinds import RecordKind
from crm_bridge.records import validate

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_state_id ON outbox (state, id);
"""

# SQLSTATE classes meaning "this record's content is refused", not "the server is unwell".
_RECORD_FAULT_CLASSES = ("22", "23")



def _is_record_fault(error: asyncpg.PostgresError) -> bool:
    return str(error.sqlstate or "").startswith(_RECORD_FAULT_CLASSES)


AfterApplyHook = Callable[[Sequence[int]], Awaitable[None]]


class RecordSink(Protocol):
    """The seam the controller, the gate and the API write through (an `Outbox`, or a fake)."""

    async def put(self, kind: str, record: Mapping[str, object]) -> int: ...

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]: ...


class OutboxError(Exception):
    """The outbox cannot be used as asked (not started, closed, or owned by another process)."""


@dataclass(frozen=True)
class OutboxStats:
    """Counters for metrics: `pending` and `rejected` are current totals in the file; the rest
    count since this `Outbox` started."""

    pending: int
    rejected: int
    delivered: int
    failures: int
    consecutive_failures: int
    last_error: str | None


@dataclass(frozen=True)
class OutboxFileStatus:
    """What an outbox file holds, read without owning it (for `dialer db outbox`)."""

    path: Path
    source_id: str
    pending: int
    rejected: int
    oldest_pending_at: float | None
    last_rejection: str | None


def outbox_path(state_dir: Path, name: str = "crm") -> Path:
    """Where the outbox called `name` keeps its SQLite file under `state_dir`."""
    return Path(state_dir) / f"outbox-{name}.sqlite3"


def inspect_outbox(state_dir: Path, name: str = "crm") -> OutboxFileStatus | None:
    """Read an outbox file's counters (safe while its owner runs: WAL readers do not block).

    Returns None when there is no outbox file yet.
    """
    path = outbox_path(state_dir, name)
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (source_id,) = db.execute("SELECT value FROM outbox_meta WHERE key = 'source_id'").fetchone()
        pending, oldest = db.execute("SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'").fetchone()
        (rejected,) = db.execute("SELECT count(*) FROM outbox WHERE state = 'rejected'").fetchone()
        last = db.execute("SELECT last_error FROM outbox WHERE state = 'rejected' ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return OutboxFileStatus(
        path=path,
        source_id=str(source_id),
        pending=int(pending),
        rejected=int(rejected),
        oldest_pending_at=None if oldest is None else float(oldest),
        last_rejection=None if last is None else str(last[0]),
    )


def pending_records(state_dir: Path, kind: RecordKind, name: str = "crm") -> list[dict[str, Any]]:
    """The records of `kind` still pending in the outbox `name` (read without owning it: safe
    while its owner runs), oldest first; [] when there is no outbox file.

    For what must act before PostgreSQL has the rows: the Redis opt-out list rebuilt at start
    (dialer.runtime.reconcile) reads these first, then PostgreSQL, so a record delivered in
    between is found in one or the other."""
    path = outbox_path(state_dir, name)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT payload FROM outbox WHERE state = 'pending' AND kind = ? ORDER BY id",
                          (RecordKind(kind).value,)).fetchall()
    finally:
        db.close()
    return [json.loads(payload) for (payload,) in rows]


async def deliver_left_over(state_dir: Path, pg_dsn: str, name: str, timeout: float) -> int | None:  # noqa: ASYNC109
    """Deliver what a short-lived process (a `dialer` command) left pending in its outbox
    `name` when PostgreSQL did not answer it; the number delivered, or None when there was
    nothing to do (no file, nothing pending, or its owner is using it right now).

    Without this, such a record (an opt-out, an access to a recording, an audited gate
    decision) would wait for the next run of a command that opens the same outbox, which
    may never come. The long-running `dialer serve` calls it now and then; it holds the
    outbox's lock only for `timeout` seconds, and commands wait that long for it."""
    status = await asyncio.to_thread(inspect_outbox, state_dir, name)
    if status is None or status.pending == 0:
        return None
    outbox = Outbox(state_dir, pg_dsn, name=name, connect_timeout=min(5.0, timeout))
    try:
        await outbox.start()
    except OutboxError:
        return None  # its command is running, and delivers it itself
    try:
        await outbox.flush(timeout)
    finally:
        await outbox.close(timeout=0.0)
    return outbox.stats().delivered


class Outbox:
    """Durable, ordered, exactly-once writer of CRM records to PostgreSQL.

    Use as `async with Outbox(state_dir, dsn) as outbox:`, or call `start()` and `close()`.
    """

    def __init__(
        self,
        state_dir: Path,
        pg_dsn: str,
        *,
        name: str = "crm",
        batch_size: int = 200,
        backoff: Backoff | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 15.0,
        poll_interval: float = 5.0,
        retain_delivered: float = 3600.0,
        prune_applied: bool = True,
        after_apply_hook: AfterApplyHook | None = None,
        lock_wait: float = 0.0,
    ) -> None:
        """`prune_applied=False` keeps every `outbox_applied` row (an audit of what this outbox
        wrote); by default rows are deleted once their record is marked delivered locally.
        `after_apply_hook` is a test seam, awaited after the PostgreSQL commit of a batch and
        before the batch is marked delivered locally (the window exactly-once must survive).
        `lock_wait`: seconds `start()` waits for another process to let go of this outbox
        (a command's outbox is delivered now and then by `dialer serve`) before refusing."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.name = name
        self.state_dir = Path(state_dir)
        self.path = outbox_path(state_dir, name)
        self._lock_path = Path(state_dir) / f"outbox-{name}.lock"
        self._dsn = pg_dsn
        self._batch_size = batch_size
        self._backoff = backoff or Backoff(initial=0.2, maximum=10.0)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._poll_interval = poll_interval
        self._retain_delivered = retain_delivered
        self._after_apply_hook = after_apply_hook
        self._prune_applied_rows = prune_applied
        self._lock_wait = lock_wait
        # Ids marked delivered locally whose `outbox_applied` rows are no longer needed.
        self._prunable: list[int] = []
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._source_id = ""
        self._pg: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._changed = asyncio.Condition()
        # Group commit: puts waiting for the next SQLite transaction.
        self._waiting: list[tuple[str, str, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._pending = 0
        self._rejected = 0
        self._delivered = 0
        self._failures = 0
        self._consecutive_failures = 0
        self._last_error: str | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or create) the SQLite file, take the lock, and start delivering."""
        if self._executor is not None:
            raise OutboxError("outbox already started")
        # The outbox holds PHI (leads, calls, recordings' rows) until PostgreSQL has them: its
        # folder is the owner's only (45 CFR 164.312(a)(1), access control).
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        give_up_at = time.monotonic() + self._lock_wait
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < give_up_at:
                    await asyncio.sleep(0.05)
                    continue
                os.close(self._lock_fd)
                self._lock_fd = None
                raise OutboxError(f"another process is using the outbox at {self.path}") from None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"outbox-{self.path.stem}")
        self._source_id, self._pending, self._rejected = await self._run(self._open_sqlite)
        self._task = asyncio.create_task(self._deliver_forever(), name=f"outbox-delivery:{self.path.name}")
        log.info("outbox started", path=str(self.path), source_id=self._source_id, pending=self._pending)

    async def close(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - API asked for by the lead
        """Stop taking puts, deliver what is pending within `timeout` seconds, then stop.

        Returns True when nothing was left pending. Records left pending stay on disk and are
        delivered by the next `Outbox` on this state directory.
        """
        if self._closed:
            return self._pending == 0
        self._closed = True
        if self._writer is not None:
            await asyncio.shield(self._writer)
        drained = await self.flush(timeout) if self._task is not None else self._pending == 0
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_pg()
        if self._executor is not None:
            await self._run(self._close_sqlite)
            self._executor.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None
        log.info("outbox closed", path=str(self.path), pending=self._pending)
        return drained

    async def __aenter__(self) -> Outbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- writing ------------------------------------------------------------------------

    async def put(self, kind: str, record: Mapping[str, object]) -> int:
        """Validate `record` and store it durably; return its outbox id.

        Raises `records.InvalidRecord` (a `ValueError`) before anything is written when the
        record is not valid for `kind`.
        """
        (outbox_id,) = await self.put_many([(kind, record)])
        return outbox_id

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]:
        """Validate every record, then store them all in one local transaction (all or none).

        Use it for records that belong together, e.g. a do-not-call disposition and its opt-out.
        """
        if self._executor is None or self._closed:
            raise OutboxError("outbox is not running: call start() first (or it was closed)")
        encoded: list[tuple[str, str]] = []
        for kind, record in items:
            normal = validate(kind, record)  # raises InvalidRecord, for an unknown kind too
            encoded.append((RecordKind(kind).value, json.dumps(normal, separators=(",", ":"))))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[int]] = []
        for kind, payload in encoded:
            future: asyncio.Future[int] = loop.create_future()
            self._waiting.append((kind, payload, future))
            futures.append(future)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name=f"outbox-writer:{self.path.name}")
        return list(await asyncio.gather(*futures))

    async def _write_waiting(self) -> None:
        # Every put that arrives while a transaction is on its way to disk joins the next one:
        # one fsync serves many puts (group commit).
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                ids = await self._run(self._insert_rows, [(kind, payload) for kind, payload, _ in batch])
            except Exception as error:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(OutboxError(f"could not write the outbox file {self.path}: {error}"))
                continue
            self._pending += len(ids)
            for (_, _, future), outbox_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(outbox_id)
            self._wake.set()

    # --- observing and draining -----------------------------------------------------------

    @property
    def source_id(self) -> str:
        """Identifies this outbox file in `outbox_applied` (stable across restarts)."""
        return self._source_id

    def stats(self) -> OutboxStats:
        return OutboxStats(
            pending=self._pending,
            rejected=self._rejected,
            delivered=self._delivered,
            failures=self._failures,
            consecutive_failures=self._consecutive_failures,
            last_error=self._last_error,
        )

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 - API asked for by the lead
        """Wait up to `timeout` seconds for every pending record to be delivered (or rejected).

        Returns True when nothing is pending, False when time ran out (records stay durable).
        """
        if self._writer is not None:
            await asyncio.shield(self._writer)
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self._pending == 0)
        except TimeoutError:
            return False
        return True

    async def requeue_rejected(self) -> int:
        """Put records PostgreSQL refused back in the queue (after fixing the cause)."""
        count: int = await self._run(self._requeue_rejected)
        self._rejected -= count
        self._pending += count
        self._wake.set()
        return count

    # --- delivery -------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                count = await self._deliver_batch()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                delay = self._note_failure(error)
                log.warning(
                    "outbox delivery failed; will retry",
                    error=self._last_error,
                    retry_in=round(delay, 3),
                    pending=self._pending,
                )
            except Exception as error:
                # Not a database outage: a bug. The records stay durable; keep the task alive,
                # say so loudly, and retry slowly rather than dying silently.
                delay = self._note_failure(error)
                log.exception("outbox delivery hit an unexpected error; will retry", retry_in=round(delay, 3))
            else:
                if self._consecutive_failures:
                    log.info("outbox delivery recovered", after_failures=self._consecutive_failures)
                self._consecutive_failures = 0
                if count == 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_interval):
                            await self._wake.wait()
                continue
            await self._close_pg()
            # Wait out the backoff; only a stop cuts it short (new puts do not hammer a dead server).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    def _note_failure(self, error: BaseException) -> float:
        self._failures += 1
        self._consecutive_failures += 1
        self._last_error = f"{type(error).__name__}: {error}"
        return self._backoff.delay(max(1, self._consecutive_failures), random.random)

    async def _deliver_batch(self) -> int:
        rows: list[tuple[int, str, str]] = await self._run(self._read_pending, self._batch_size)
        if not rows:
            return 0
        conn = await self._connection()
        rejected: dict[int, str] = {}
        async with asyncio.timeout(self._command_timeout):
            try:
                # Fast path: the whole batch in one transaction, no savepoints.
                async with conn.transaction():
                    # The audit chains' lock first, before any row lock (crm_bridge.audit_log).
                    await lock_chains(conn)
                    heads = ChainHeads()
                    await self._prune_applied(conn)
                    for outbox_id, kind, payload in rows:
                        await self._apply_once(conn, outbox_id, kind, payload, heads)
            except asyncpg.PostgresError as error:
                if not _is_record_fault(error):
                    raise
                # Some record is refused: redo the batch with a savepoint per record, so the
                # refused ones are set aside and the others still go through, in order.
                async with conn.transaction():
                    await lock_chains(conn)
                    heads = ChainHeads()
                    await self._prune_applied(conn)
                    for outbox_id, kind, payload in rows:
                        try:
                            async with conn.transaction():
                                await self._apply_once(conn, outbox_id, kind, payload, heads)
                        except asyncpg.PostgresError as record_error:
                            heads.forget()  # what the record appended was rolled back with it
                            if not _is_record_fault(record_error):
                                raise
                            rejected[outbox_id] = f"{record_error.sqlstate} {record_error}"
                            log.error(
                                "outbox record refused by PostgreSQL",
                                outbox_id=outbox_id,
                                kind=kind,
                                error=rejected[outbox_id],
                            )
        self._prunable = []  # the batch transaction committed, and the pruning with it
        ids = [outbox_id for outbox_id, _, _ in rows]
        if self._after_apply_hook is not None:
            await self._after_apply_hook(ids)
        await self._run(self._mark_done, ids, rejected)
        self._prunable = [i for i in ids if i not in rejected]
        self._delivered += len(ids) - len(rejected)
        self._rejected += len(rejected)
        async with self._changed:
            self._pending -= len(ids)
            self._changed.notify_all()
        return len(ids)

    async def _prune_applied(self, conn: asyncpg.Connection) -> None:
        # Rows of `outbox_applied` are needed only until their record is marked delivered in the
        # local file; after that it is never sent again. Delete exactly those ids (never a
        # range: a requeued record can have a lower id than ones already delivered). Runs in the
        # next batch's transaction; if that rolls back, the ids are kept for the following one.
        if not self._prune_applied_rows or not self._prunable:
            return
        await conn.execute(
            "DELETE FROM outbox_applied WHERE source_id = $1 AND outbox_id = ANY($2::bigint[])",
            self._source_id,
            self._prunable,
        )

    async def _apply_once(
        self, conn: asyncpg.Connection, outbox_id: int, kind: str, payload: str, heads: ChainHeads
    ) -> None:
        # Recorded in the same transaction as the apply: a record re-sent after a crash between
        # the commit and the local mark finds its row here and is skipped (exactly once).
        fresh = await conn.fetchval(
            "INSERT INTO outbox_applied (source_id, outbox_id, kind) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING true",
            self._source_id,
            outbox_id,
            kind,
        )
        if fresh:
            await apply_record(conn, RecordKind(kind), json.loads(payload), origin=f"{self._source_id}:{outbox_id}",
                               heads=heads)

    async def _connection(self) -> asyncpg.Connection:
        if self._pg is None or self._pg.is_closed():
            self._pg = await asyncpg.connect(
                self._dsn, timeout=self._connect_timeout, command_timeout=self._command_timeout
            )
        return self._pg

    async def _close_pg(self) -> None:
        conn, self._pg = self._pg, None
        if conn is not None and not conn.is_closed():
            # A broken connection cannot close politely; terminate does not wait for the server.
            conn.terminate()

    # --- SQLite (run on the outbox's own thread) -------------------------------------------

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise OutboxError("outbox is not running: call start() first")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _open_sqlite(self) -> tuple[str, int, int]:
        # Created 0600 (SQLite gives its -wal and -shm files the database file's mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (WAL fsynced) before put() returns, even if the machine loses power.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO outbox_meta (key, value) VALUES ('source_id', ?)", (str(uuid.uuid4()),))
        (source_id,) = db.execute("SELECT value FROM outbox_meta WHERE key = 'source_id'").fetchone()
        (pending,) = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
        (rejected,) = db.execute("SELECT count(*) FROM outbox WHERE state = 'rejected'").fetchone()
        self._db = db
        return str(source_id), int(pending), int(rejected)

    def _close_sqlite(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _sqlite(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError("outbox file is not open")
        return self._db

    def _insert_rows(self, rows: Sequence[tuple[str, str]]) -> list[int]:
        db = self._sqlite()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = []
            for kind, payload in rows:
                cursor = db.execute(
                    "INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)", (kind, payload, now)
                )
                ids.append(int(cursor.lastrowid or 0))
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does): a second ROLLBACK would
            # raise "no transaction is active" and hide the real cause.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return ids

    def _read_pending(self, limit: int) -> list[tuple[int, str, str]]:
        rows = self._sqlite().execute(
            "SELECT id, kind, payload FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [(int(i), str(k), str(p)) for i, k, p in rows]

    def _mark_done(self, ids: Sequence[int], rejected: Mapping[int, str]) -> None:
        db = self._sqlite()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "UPDATE outbox SET state = 'delivered', delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
                [(now, i) for i in ids if i not in rejected],
            )
            db.executemany(
                "UPDATE outbox SET state = 'rejected', last_error = ?, attempts = attempts + 1 WHERE id = ?",
                [(error, i) for i, error in rejected.items()],
            )
            # Delivered rows are only kept a while, for inspection; AUTOINCREMENT never reuses ids.
            db.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?", (now - self._retain_delivered,)
            )
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does): a second ROLLBACK would
            # raise "no transaction is active" and hide the real cause.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _requeue_rejected(self) -> int:
        cursor = self._sqlite().execute("UPDATE outbox SET state = 'pending' WHERE state = 'rejected'")
        return int(cursor.rowcount)
