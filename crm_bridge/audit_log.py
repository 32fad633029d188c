"""The audit trail in PostgreSQL: appending rows to their chains where they are applied, signed
checkpoints, and the full check behind `dialer audit verify`.

Why one lock, and why taken first: two controllers share one PostgreSQL, each with its own
outbox applying records. Entry n+1 needs entry n's hash, so appends to a chain must be strictly
one after the other and see each other's committed heads. A sequence would not do: it hands out
numbers, but the hash of the previous entry is only known once its transaction commits, and a
rolled-back transaction leaves a gap. So every transaction that appends takes one transaction-
level advisory lock (`CHAIN_LOCK_KEY`) before reading a head, and holds it until it commits:
appends from every controller are serialised, each reads the head the previous one committed
(READ COMMITTED: a new snapshot per statement, after the lock is granted), and the chain cannot
fork. `UNIQUE (chain, prev_hash)` makes a fork impossible at the schema level even for a writer
that skipped the lock. The outbox takes the lock at the start of each batch transaction, before
any row lock, so an applier never holds a row lock while waiting for it (no deadlock with another
applier that locked the same row first); it is one lock for every chain for the same reason.
The cost is that batch applies from several controllers take turns: a batch holds the lock for
its own transaction only (milliseconds).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from crm_bridge.audit_chain import (
    CHAINS,
    ZERO_HASH,
    Break,
    ChainFormatError,
    ChainSpec,
    Checkpoint,
    Entry,
    Head,
    RunChecker,
    canonical_row,
    checkpoint_statement,
    json_value,
    new_entry,
    project_row,
    statement_heads,
)
from crm_bridge.audit_keys import AuditSigningKey, signature_valid

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock key of the audit chains ("dialer" + 2; the migrations use + 1).
CHAIN_LOCK_KEY = 0x6469616C65720002


async def lock_chains(conn: asyncpg.Connection) -> None:
    """Take the chains' lock for the rest of the current transaction (re-entrant)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK_KEY)


async def chain_signed(conn: asyncpg.Connection) -> bool:
    """Whether the trail has a signed chain (a checkpoint): from then on a missing signing key is
    refused. Entries that no checkpoint signed yet lose nothing to a new key (their links are
    checked by their hashes alone until the first checkpoint), so a key may still be made."""
    if not await conn.fetchval("SELECT to_regclass('audit_checkpoints') IS NOT NULL"):
        return False
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM audit_checkpoints)"))


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(row["chain"], int(row["seq"]), row["record_key"], json_value(row["applied_at"]), row["origin"],
                 row["row_json"], row["prev_hash"], row["entry_hash"])


_ENTRY_COLUMNS = "chain, seq, record_key, applied_at, origin, row_json, prev_hash, entry_hash"


class ChainHeads:
    """The chains' heads as one transaction has written them, so a batch reads each head once.

    Valid only inside the transaction that holds the chains' lock, and only while nothing it
    wrote was rolled back: after a savepoint rolls back, call `forget()`. `applied_at` is the
    database's clock when the batch first needed it (every entry of a batch carries it)."""

    def __init__(self) -> None:
        self.heads: dict[str, Head] = {}
        self.applied_at: datetime | None = None

    def forget(self) -> None:
        self.heads.clear()


async def _append(conn: asyncpg.Connection, chain: str, key: str, row_json: str, origin: str | None,
                  heads: ChainHeads | None) -> Entry:
    known = None if heads is None else heads.heads.get(chain)
    at = None if heads is None else heads.applied_at
    if known is None or at is None:
        state = await conn.fetchrow(
            "SELECT clock_timestamp() AS at, "
            "(SELECT seq FROM audit_entries WHERE chain = $1 ORDER BY seq DESC LIMIT 1) AS seq, "
            "(SELECT entry_hash FROM audit_entries WHERE chain = $1 ORDER BY seq DESC LIMIT 1) AS hash", chain)
        assert state is not None
        known = Head(state["seq"] or 0, state["hash"] or ZERO_HASH)
        at = state["at"] if at is None else at
    assert at is not None
    entry = new_entry(chain, known.seq + 1, key, at, origin, row_json, known.entry_hash)
    await conn.execute(
        f"INSERT INTO audit_entries ({_ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        entry.chain, entry.seq, entry.record_key, at, entry.origin, entry.row_json, entry.prev_hash, entry.entry_hash)
    if heads is not None:
        heads.heads[chain] = Head(entry.seq, entry.entry_hash)
        heads.applied_at = at
    return entry


async def append_row(conn: asyncpg.Connection, spec: ChainSpec, key: str, *, origin: str | None,
                     heads: ChainHeads | None = None) -> Entry | None:
    """Append the row `key` of `spec.table`, as it now stands in this transaction, to its chain,
    unless it equals the row's last entry (a repeated or older write that changed nothing).

    Call it inside the transaction that wrote the row, after the write. With `heads`, the caller
    holds the chains' lock already (the outbox takes it first in every batch)."""
    if heads is None:
        await lock_chains(conn)
    # The row and its last entry in one round trip.
    row = await conn.fetchrow(
        f"SELECT {spec.select_columns}, (SELECT row_json FROM audit_entries WHERE chain = $2 AND record_key = $3 "
        f"ORDER BY seq DESC LIMIT 1) AS audit_last_entry FROM {spec.table} WHERE {spec.key} = $1",
        key, spec.name, str(key))
    if row is None:
        return None
    row_json = canonical_row(spec, dict(row))
    if row["audit_last_entry"] == row_json:
        return None
    return await _append(conn, spec.name, str(key), row_json, origin, heads)


async def append_inserted(conn: asyncpg.Connection, spec: ChainSpec, row: Mapping[str, Any], *,
                          origin: str | None, heads: ChainHeads | None = None) -> Entry:
    """Append a row this transaction has just inserted, as PostgreSQL returned it (`RETURNING`):
    an immutable audit row needs neither a read-back nor a comparison with an earlier entry."""
    if heads is None:
        await lock_chains(conn)
    return await _append(conn, spec.name, str(json_value(row[spec.key])), canonical_row(spec, row), origin, heads)


# --- checkpoints -------------------------------------------------------------------------------

async def read_heads(conn: asyncpg.Connection, chains: Collection[str] = tuple(CHAINS)) -> dict[str, Head]:
    """Every chain's last entry, read in one statement (one snapshot)."""
    rows = await conn.fetch(
        "SELECT c.chain, e.seq, e.entry_hash FROM unnest($1::text[]) AS c(chain) CROSS JOIN LATERAL "
        "(SELECT seq, entry_hash FROM audit_entries WHERE chain = c.chain ORDER BY seq DESC LIMIT 1) e",
        list(chains))
    return {row["chain"]: Head(int(row["seq"]), row["entry_hash"]) for row in rows}


async def _checkpoint_rows(conn: asyncpg.Connection, where: str, *args: Any) -> list[Checkpoint]:
    rows = await conn.fetch(
        "SELECT checkpoint_id, statement, key_id, public_key, signature FROM audit_checkpoints "
        f"{where}", *args)
    found = []
    for row in rows:
        # The heads are read from the signed statement itself, never from the lookup table.
        signed_at, heads = statement_heads(row["statement"])
        found.append(Checkpoint(int(row["checkpoint_id"]), signed_at, row["statement"], row["key_id"],
                                row["public_key"], row["signature"], heads))
    return found


async def sign_checkpoint(conn: asyncpg.Connection, key: AuditSigningKey, *, only_if_changed: bool = False
                          ) -> Checkpoint | None:
    """Sign every chain's head now and store the checkpoint; None when there is no entry yet (or,
    with `only_if_changed`, when no chain moved since the last checkpoint)."""
    async with conn.transaction():
        heads = await read_heads(conn)
        if not heads:
            return None
        if only_if_changed:
            last = await _checkpoint_rows(conn, "ORDER BY checkpoint_id DESC LIMIT 1")
            if last and dict(last[0].heads) == heads:
                return None
        signed_at = await conn.fetchval("SELECT clock_timestamp()")
        statement = checkpoint_statement(heads, signed_at, key.key_id)
        signature = key.sign(statement.encode())
        checkpoint_id = await conn.fetchval(
            "INSERT INTO audit_checkpoints (signed_at, statement, key_id, public_key, signature) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING checkpoint_id",
            signed_at, statement, key.key_id, key.public_key_b64, signature)
        await conn.executemany(
            "INSERT INTO audit_checkpoint_heads (checkpoint_id, chain, seq, entry_hash) VALUES ($1, $2, $3, $4)",
            [(checkpoint_id, chain, head.seq, head.entry_hash) for chain, head in heads.items()])
    return Checkpoint(int(checkpoint_id), json_value(signed_at), statement, key.key_id, key.public_key_b64,
                      signature, heads)


async def checkpoint_by_id(conn: asyncpg.Connection, checkpoint_id: int) -> Checkpoint | None:
    found = await _checkpoint_rows(conn, "WHERE checkpoint_id = $1", checkpoint_id)
    return found[0] if found else None


async def checkpoint_covering(conn: asyncpg.Connection, chain: str, seq: int) -> Checkpoint | None:
    """The first checkpoint whose head of `chain` is at or after `seq` (the shortest path from an
    entry to a signature)."""
    checkpoint_id = await conn.fetchval(
        "SELECT checkpoint_id FROM audit_checkpoint_heads WHERE chain = $1 AND seq >= $2 "
        "ORDER BY seq, checkpoint_id LIMIT 1", chain, seq)
    return None if checkpoint_id is None else await checkpoint_by_id(conn, int(checkpoint_id))


# --- reading entries ---------------------------------------------------------------------------

async def entries_for_keys(conn: asyncpg.Connection, chain: str, keys: Collection[str]) -> list[Entry]:
    """Every entry of `chain` for these record keys, in chain order."""
    if not keys:
        return []
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM audit_entries WHERE chain = $1 AND record_key = ANY($2::text[]) ORDER BY seq",
        chain, sorted(keys))
    return [_entry(row) for row in rows]


async def entry_run(conn: asyncpg.Connection, chain: str, first: int, last: int) -> list[Entry]:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM audit_entries WHERE chain = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
        chain, first, last)
    return [_entry(row) for row in rows]


async def _stream(conn: asyncpg.Connection, query: str, *args: Any) -> AsyncIterator[asyncpg.Record]:
    async for row in conn.cursor(query, *args, prefetch=2000):
        yield row


# --- verifying the database --------------------------------------------------------------------

@dataclass
class ChainReport:
    chain: str
    checked_from: int
    entries: int = 0
    head: Head | None = None
    checkpoints: int = 0
    rows_checked: int = 0
    rows_before_trail: int = 0
    broken: Break | None = None


@dataclass
class AuditReport:
    """What `verify_trail` found; `ok` only when no chain has a break."""

    since: datetime | None
    chains: list[ChainReport] = field(default_factory=list)
    untrusted_checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return all(chain.broken is None for chain in self.chains)

    @property
    def first_break(self) -> Break | None:
        return next((chain.broken for chain in self.chains if chain.broken is not None), None)


def _difference(spec: ChainSpec, entry_row: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    columns = [column for column in entry_row if column in spec.columns]
    current = json.loads(project_row(spec, row, columns))
    return [column for column in columns if current.get(column) != entry_row.get(column)]


async def verify_chain(conn: asyncpg.Connection, spec: ChainSpec, *, trusted_keys: Collection[bytes],
                       since: datetime | None, trail_started: datetime) -> tuple[ChainReport, int]:
    """Check one chain: every link from the start (or from the last trusted checkpoint before
    `since`), every checkpoint's signature and head, and the table's rows against their last
    entries. Returns the report and the number of checkpoints signed by a key not trusted."""
    checkpoints = await _checkpoint_rows(
        conn, "WHERE checkpoint_id IN (SELECT checkpoint_id FROM audit_checkpoint_heads WHERE chain = $1) "
        "ORDER BY checkpoint_id", spec.name)
    untrusted = 0
    signed_heads: dict[int, list[tuple[Checkpoint, Head]]] = {}
    start_seq, start_prev = 1, ZERO_HASH
    report = ChainReport(spec.name, 1)
    for checkpoint in checkpoints:
        public_key = _b64(checkpoint.public_key)
        if public_key not in trusted_keys:
            untrusted += 1
            continue
        head = checkpoint.heads.get(spec.name)
        if not signature_valid(public_key, checkpoint.statement.encode(), checkpoint.signature):
            report.broken = Break(spec.name, head.seq if head else 0, "checkpoint",
                                  f"checkpoint {checkpoint.checkpoint_id} of {checkpoint.signed_at} has a bad "
                                  "signature: it was altered")
            return report, untrusted
        if head is None:
            continue  # the lookup table names this chain, the signed statement does not: not evidence
        signed_heads.setdefault(head.seq, []).append((checkpoint, head))
        # Start from the last trusted checkpoint signed before `since`: its signature vouches
        # for everything up to its head.
        if since is not None and datetime.fromisoformat(checkpoint.signed_at) <= since:
            start_seq, start_prev = head.seq + 1, head.entry_hash
    report.checked_from = start_seq
    report.checkpoints = sum(len(found) for seq, found in signed_heads.items() if seq >= start_seq - 1)

    checker = RunChecker(spec.name, start_seq=start_seq, start_prev=start_prev)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in _stream(conn, f"SELECT {_ENTRY_COLUMNS} FROM audit_entries WHERE chain = $1 AND seq >= $2 "
                                 "ORDER BY seq", spec.name, start_seq):
            report.entries += 1
            if checker.feed(_entry(row)) is not None:
                report.broken = checker.broken
                return report, untrusted
            for checkpoint, head in signed_heads.get(checker.last_seq, ()):
                if head.entry_hash != checker.head:
                    report.broken = Break(spec.name, head.seq, "checkpoint",
                                          f"checkpoint {checkpoint.checkpoint_id} of {checkpoint.signed_at} signed "
                                          "another hash for this entry: the chain up to here was rewritten")
                    return report, untrusted
        report.head = Head(checker.last_seq, checker.head) if checker.last_seq >= 1 else None
        beyond = [(c, h) for seq, found in signed_heads.items() if seq > checker.last_seq for c, h in found]
        if beyond:
            checkpoint, head = min(beyond, key=lambda pair: pair[1].seq)
            report.broken = Break(spec.name, checker.last_seq + 1, "missing",
                                  f"checkpoint {checkpoint.checkpoint_id} of {checkpoint.signed_at} signs entries up "
                                  f"to {head.seq}, but the chain ends at {checker.last_seq}: the last entries were "
                                  "deleted")
            return report, untrusted
        report.broken = await _check_rows(conn, spec, report, start_seq, since, trail_started)
    return report, untrusted


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return b""


async def _check_rows(conn: asyncpg.Connection, spec: ChainSpec, report: ChainReport, start_seq: int,
                      since: datetime | None, trail_started: datetime) -> Break | None:
    columns = ", ".join(f"t.{column} AS c_{column}" for column in spec.columns)
    # Each key's last entry against the row as it stands.
    query = (
        f"SELECT e.record_key, e.seq, e.row_json, t.{spec.key} IS NOT NULL AS present, {columns} "
        "FROM (SELECT DISTINCT ON (record_key) record_key, seq, row_json FROM audit_entries "
        "      WHERE chain = $1 ORDER BY record_key, seq DESC) e "
        f"LEFT JOIN {spec.table} t ON t.{spec.key}::text = e.record_key WHERE e.seq >= $2 ORDER BY e.seq")
    async for row in _stream(conn, query, spec.name, start_seq):
        report.rows_checked += 1
        if not row["present"]:
            return Break(spec.name, row["seq"], "row_deleted",
                         f"the {spec.table} row {row['record_key']} was deleted (its last entry is {row['seq']})")
        current = {column: row[f"c_{column}"] for column in spec.columns}
        try:
            entry_row = json.loads(row["row_json"])
        except json.JSONDecodeError:
            raise ChainFormatError(f"entry {spec.name}/{row['seq']} holds no JSON") from None
        changed = _difference(spec, entry_row, current)
        if changed:
            return Break(spec.name, row["seq"], "row_edited",
                         f"the {spec.table} row {row['record_key']} differs from its chain entry {row['seq']} "
                         f"(changed: {', '.join(changed)}): it was edited outside the trail")
    # Rows nothing wrote through the chain.
    since_clause = f"AND t.{spec.time_column} >= $3" if since is not None else ""
    args: list[Any] = [spec.name, trail_started] + ([since] if since is not None else [])
    unchained = await conn.fetchrow(
        f"SELECT t.{spec.key}::text AS key FROM {spec.table} t WHERE t.{spec.time_column} >= $2 {since_clause} "
        f"AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.chain = $1 AND e.record_key = t.{spec.key}::text) "
        f"ORDER BY t.{spec.time_column} LIMIT 1", *args)
    if unchained is not None:
        return Break(spec.name, report.head.seq if report.head else 0, "row_unchained",
                     f"the {spec.table} row {unchained['key']} is in no chain entry: it was written outside the trail")
    report.rows_before_trail = int(await conn.fetchval(
        f"SELECT count(*) FROM {spec.table} t WHERE t.{spec.time_column} < $2 AND NOT EXISTS "
        f"(SELECT 1 FROM audit_entries e WHERE e.chain = $1 AND e.record_key = t.{spec.key}::text)",
        spec.name, trail_started))
    return None


async def verify_trail(conn: asyncpg.Connection, *, trusted_keys: Collection[bytes], since: datetime | None = None,
                       chains: Sequence[ChainSpec] = tuple(CHAINS.values())) -> AuditReport:
    """Recompute every chain and name the first broken link of each (see `Break.problem`).

    `trusted_keys`: raw Ed25519 public keys whose checkpoints count; checkpoints signed by
    others are counted in `untrusted_checkpoints` and otherwise ignored."""
    trail_started = await conn.fetchval("SELECT started_at FROM audit_trail")
    report = AuditReport(since)
    for spec in chains:
        chain_report, untrusted = await verify_chain(conn, spec, trusted_keys=trusted_keys, since=since,
                                                     trail_started=trail_started)
        report.chains.append(chain_report)
        report.untrusted_checkpoints += untrusted
    return report


class PeriodicCheckpoints:
    """Signs the chains' heads every `interval` seconds when they moved (the `dialer serve` task).

    Each checkpoint bounds how far back an undetected rewrite could reach, and shortens the runs
    an evidence packet carries from an entry to its signature. A failure (PostgreSQL down) is
    logged and retried at the next tick: checkpoints are evidence, not a condition for dialing."""

    def __init__(self, dsn: str, key: AuditSigningKey, *, interval: float = 60.0) -> None:
        self.dsn = dsn
        self.key = key
        self.interval = interval
        self.signed = 0

    async def tick(self) -> Checkpoint | None:
        conn = await asyncpg.connect(self.dsn, timeout=5.0)
        try:
            checkpoint = await sign_checkpoint(conn, self.key, only_if_changed=True)
        finally:
            await conn.close()
        if checkpoint is not None:
            self.signed += 1
        return checkpoint

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("audit_checkpoint_failed", error=f"{type(error).__name__}: {error}")
