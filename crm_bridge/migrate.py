"""Versioned schema migrations for the CRM tables.

Migrations are plain SQL files named `NNNN_name.sql` in `crm_bridge/migrations/`. Each is
applied once, in version order, inside its own transaction, and recorded in
`schema_migrations` with a checksum of its text. A session-level advisory lock serialises
concurrent runners (two controllers starting at once): the second waits, then finds nothing
left to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Fixed key for pg_advisory_lock; any bigint unique to this purpose will do.
MIGRATION_LOCK_KEY = 0x6469616C65720001  # "dialer" + 1

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    char(64) NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migration files or the database's migration ledger are inconsistent."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version, name, text and the sha256 of that text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class AppliedMigration:
    """A row of `schema_migrations`."""

    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class MigrationStatus:
    """What the database holds compared with the files shipped."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    # Applied migrations whose file has since changed (or disappeared): never edit an applied file.
    modified: tuple[AppliedMigration, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.modified


def discover(directory: Path = MIGRATIONS_DIR) -> tuple[Migration, ...]:
    """Read every `NNNN_name.sql` file in `directory`, ordered by version.

    Raises `MigrationError` for a badly named `.sql` file or two files with one version.
    """
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} is not named NNNN_lowercase_name.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                f"migrations {migrations[version].label} and {path.stem} share version {version}"
            )
        migrations[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return tuple(migrations[v] for v in sorted(migrations))


def compare(
    available: Sequence[Migration], applied: Sequence[AppliedMigration]
) -> MigrationStatus:
    """Pure comparison of shipped files against the ledger."""
    by_version = {m.version: m for m in available}
    applied_versions = {a.version for a in applied}
    modified = tuple(
        a for a in applied if a.version not in by_version or by_version[a.version].checksum != a.checksum
    )
    pending = tuple(m for m in available if m.version not in applied_versions)
    return MigrationStatus(applied=tuple(applied), pending=pending, modified=modified)


async def _read_ledger(conn: asyncpg.Connection) -> list[AppliedMigration]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
    )
    return [
        AppliedMigration(row["version"], row["name"], row["checksum"], row["applied_at"]) for row in rows
    ]


async def status(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> MigrationStatus:
    """Report applied, pending and modified migrations without changing anything."""
    return compare(discover(directory), await _read_ledger(conn))


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> tuple[Migration, ...]:
    """Apply every pending migration in order; return those this call applied.

    Refuses to run (`MigrationError`) when an applied migration's file was modified, because the
    database would no longer match what the files describe.
    """
    available = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_LEDGER)
        current = compare(available, await _read_ledger(conn))
        if current.modified:
            labels = ", ".join(f"{a.version:04d}_{a.name}" for a in current.modified)
            raise MigrationError(
                f"applied migration(s) {labels} differ from the files shipped; add a new migration instead"
            )
        for migration in current.pending:
            async with conn.transaction():
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as error:
                    raise MigrationError(f"migration {migration.label} failed: {error}") from error
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return current.pending
    finally:
        # A lost connection already released its session lock; unlocking it would only mask the error.
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def ensure_schema(dsn: str) -> tuple[Migration, ...]:
    """Create the database if the server answers without it, and apply pending migrations.

    Raises `crm_bridge.pg.DatabaseUnavailable` when the server does not answer.
    """
    from crm_bridge.pg import connect

    conn = await connect(dsn, create_missing=True)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
