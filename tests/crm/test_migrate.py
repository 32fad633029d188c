"""Migrations: discovery rules, applying on an empty database, idempotence, concurrency, CLI."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from crm_bridge import migrate
from dialer import cli
from tests.support.databases import dsn_for

pytestmark = pytest.mark.timeout(60)

EXPECTED_TABLES = {
    "pipeline_stages", "agents", "campaigns", "leads", "consent_records", "calls", "dispositions",
    "recordings", "compliance_decisions", "opt_outs", "api_tokens", "idempotency_keys",
    "outbox_applied", "schema_migrations",
}


def test_shipped_migrations_are_ordered_and_well_named() -> None:
    found = migrate.discover()
    versions = [m.version for m in found]
    # Ordered and unique from 1; a number may be missing for a while (work in progress on a
    # branch reserves its number), which the migrator handles (it applies what is pending).
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert all(len(m.checksum) == 64 for m in found)


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError, match=r"1_init\.sql is not named"):
        migrate.discover(tmp_path)


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(migrate.MigrationError, match="share version 1"):
        migrate.discover(tmp_path)


@pytest.mark.integration
async def test_migrations_apply_on_empty_database_and_are_idempotent(scratch_dsn: str) -> None:
    conn = await asyncpg.connect(scratch_dsn)
    try:
        first = await migrate.migrate(conn)
        assert [m.version for m in first] == [m.version for m in migrate.discover()]
        assert await migrate.migrate(conn) == ()
        report = await migrate.status(conn)
        assert report.up_to_date
        tables = {
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert EXPECTED_TABLES <= tables
        stages = await conn.fetch("SELECT stage FROM pipeline_stages ORDER BY position NULLS LAST, stage")
        assert [r["stage"] for r in stages][:6] == [
            "new_lead", "contacted", "appt_set", "appt_held", "app_pending", "issued",
        ]
    finally:
        await conn.close()


@pytest.mark.integration
async def test_concurrent_runners_apply_each_migration_once(scratch_dsn: str) -> None:
    conns = [await asyncpg.connect(scratch_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.migrate(c) for c in conns))
        applied = [m.version for result in results for m in result]
        assert sorted(applied) == [m.version for m in migrate.discover()]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(migrate.discover())
    finally:
        for c in conns:
            await c.close()


@pytest.mark.integration
async def test_modified_applied_migration_is_reported_and_blocks(scratch_dsn: str, tmp_path: Path) -> None:
    shutil.copytree(migrate.MIGRATIONS_DIR, tmp_path / "m", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    directory = tmp_path / "m"
    conn = await asyncpg.connect(scratch_dsn)
    try:
        await migrate.migrate(conn, directory)
        first = sorted(directory.glob("0001_*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        report = await migrate.status(conn, directory)
        assert [m.version for m in report.modified] == [1]
        with pytest.raises(migrate.MigrationError, match="0001_crm_core"):
            await migrate.migrate(conn, directory)
    finally:
        await conn.close()


@pytest.mark.integration
async def test_failing_migration_leaves_no_trace(scratch_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(scratch_dsn)
    try:
        with pytest.raises(migrate.MigrationError, match="0002_bad failed"):
            await migrate.migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
        assert await conn.fetchval("SELECT array_agg(version) FROM schema_migrations") == [1]
    finally:
        await conn.close()


def test_cli_unreachable_server_prints_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["db", "status", "--dsn", "postgresql://postgres@127.0.0.1:1/dialer"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip() == (
        "dialer: PostgreSQL at 127.0.0.1:1 does not answer: start it or set DIALER_PG_DSN"
    )


def test_cli_unusable_dsn_prints_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["db", "migrate", "--dsn", "mysql://x@y/z"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("dialer: DIALER_PG_DSN is not a usable PostgreSQL URL")
    assert "Traceback" not in err


@pytest.mark.integration
def test_cli_migrate_creates_missing_database_then_status_is_clean(
    scratch_db_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = dsn_for(scratch_db_name)
    assert cli.main(["db", "status", "--dsn", dsn]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["db", "migrate", "--dsn", dsn]) == 0
    out = capsys.readouterr().out
    assert "applied 0001_crm_core" in out
    assert cli.main(["db", "migrate", "--dsn", dsn]) == 0
    assert "applied" not in capsys.readouterr().out
    assert cli.main(["db", "status", "--dsn", dsn]) == 0
    assert "pending" not in capsys.readouterr().out
