"""`dialer db migrate` and `dialer db status`: the CRM schema's versioned migrations."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from crm_bridge import migrate as migrations
from crm_bridge.outbox import inspect_outbox
from crm_bridge.pg import DatabaseUnavailable, connect, describe_server
from dialer.cli import UserError
from dialer.commands import COMMAND_OUTBOXES
from dialer.settings import from_environment

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser("db", help="CRM database schema (PostgreSQL)")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    migrate_parser = db_commands.add_parser(
        "migrate", help="create the database if needed and apply pending migrations"
    )
    migrate_parser.add_argument("--dsn", help="PostgreSQL URL (default: DIALER_PG_DSN)")
    migrate_parser.set_defaults(handler=_migrate)

    status_parser = db_commands.add_parser("status", help="list applied and pending migrations")
    status_parser.add_argument("--dsn", help="PostgreSQL URL (default: DIALER_PG_DSN)")
    status_parser.set_defaults(handler=_status)

    outbox_parser = db_commands.add_parser(
        "outbox", help="show records waiting in this instance's local outboxes: the dialer's and its commands' (DIALER_STATE_DIR)"
    )
    outbox_parser.add_argument("--state-dir", type=Path, help="state directory (default: DIALER_STATE_DIR)")
    outbox_parser.set_defaults(handler=_outbox)


def _dsn(args: argparse.Namespace) -> str:
    dsn: str | None = args.dsn
    return dsn or from_environment().pg_dsn


def _migrate(args: argparse.Namespace) -> int:
    dsn = _dsn(args)

    async def run() -> tuple[migrations.Migration, ...]:
        conn = await connect(dsn, create_missing=True)
        try:
            return await migrations.migrate(conn)
        finally:
            await conn.close()

    applied = _run(run, dsn)
    if applied:
        for migration in applied:
            print(f"applied {migration.label}")
    print(f"schema is up to date on {describe_server(dsn)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    dsn = _dsn(args)

    async def run() -> migrations.MigrationStatus:
        conn = await connect(dsn)
        try:
            return await migrations.status(conn)
        finally:
            await conn.close()

    report = _run(run, dsn)
    modified = {a.version for a in report.modified}
    for applied in report.applied:
        note = "  MODIFIED since applied" if applied.version in modified else ""
        print(f"applied  {applied.version:04d}_{applied.name}  {applied.applied_at:%Y-%m-%d %H:%M:%S%z}{note}")
    for pending in report.pending:
        print(f"pending  {pending.label}")
    if report.modified:
        print("some applied migrations were modified; the schema may not match the code")
        return 1
    if report.pending:
        print("run `dialer db migrate` to apply the pending migrations")
        return 1
    return 0


def _outbox(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or from_environment().state_dir
    reports = []
    for name in ("crm", *COMMAND_OUTBOXES):  # the dialer's, then what commands left (dialer serve delivers it)
        try:
            report = inspect_outbox(state_dir, name)
        except sqlite3.Error as error:
            raise UserError(f"cannot read the outbox in {state_dir} ({error}): check the path and permissions") from None
        if report is not None:
            reports.append(report)
    if not reports:
        print(f"no outbox in {state_dir} yet: nothing was ever written through it")
        return 0
    for report in reports:
        age = "" if report.oldest_pending_at is None else \
            f", oldest waiting {time.time() - report.oldest_pending_at:.0f} s"
        print(f"{report.path}: {report.pending} pending{age}, {report.rejected} rejected")
        if report.last_rejection:
            print(f"last rejection: {report.last_rejection}")
    return 1 if any(report.rejected for report in reports) else 0


def _run(make: Callable[[], Coroutine[Any, Any, T]], dsn: str) -> T:
    """Run one async step, turning database trouble into a one-sentence `UserError`."""
    try:
        return asyncio.run(make())
    except DatabaseUnavailable as error:
        raise UserError(str(error), exit_code=3) from None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
        raise UserError(
            f"lost the connection to PostgreSQL at {describe_server(dsn)} ({error}): check the server and retry",
            exit_code=3,
        ) from None
    except migrations.MigrationError as error:
        raise UserError(str(error), exit_code=4) from None
