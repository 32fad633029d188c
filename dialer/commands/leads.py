"""`dialer leads import FILE --map ...`: import a CSV list of leads, scrubbed, into the CRM.

    dialer leads import leads.csv --map "name=Full Name,phone=Phone,email=E-mail,zip=ZIP" \\
        [--campaign ID] [--list LIST] [--report report.csv] [--label TEXT]

`--list` puts the imported leads on a lead list (its id or its name, made with `dialer lists
create`); they join every campaign the list is assigned to, as `dialer lists add-leads` does.

Prints one summary line; a progress bar on stderr when stderr is a terminal; warnings about stale
or missing DNC list copies on stderr. Exit 0 when the import committed (whatever its rows'
fates), 2 for bad input, 1 when Redis is unusable, 3 when PostgreSQL is.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from compliance_rules.ruleset import RuleBook, RuleDataError, load_rulebook
from compliance_rules.scrub import BatchScrubber
from compliance_rules.store import DncStore
from crm_bridge.lead_import import ImportInputError, ImportOutcome, ImportPlan, import_leads, new_import_id
from crm_bridge.lead_mapping import MappingError, parse_mapping
from crm_bridge.migrate import MigrationError, ensure_schema
from crm_bridge.pg import DatabaseUnavailable, connect, describe_server
from dialer.cli import UserError
from dialer.settings import Settings, from_environment

PHASES = {"read": "reading", "duplicates": "duplicates", "scrub": "scrubbing", "write": "writing"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    leads = subparsers.add_parser("leads", help="lead lists: import a CSV file, scrubbed, into the CRM")
    actions = leads.add_subparsers(dest="leads_command", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="import a CSV file of leads (de-duplicated and scrubbed)")
    imp.add_argument("file", type=Path, help="CSV file with a header row (UTF-8; comma, semicolon or tab)")
    imp.add_argument("--map", required=True, dest="mapping",
                     help="field=Column pairs: phone (repeatable), name or first_name/last_name, email, address, "
                          "address2, city, state, zip, consent, consent_at, consent_kind, source, custom.NAME")
    imp.add_argument("--campaign", help="add the imported leads to this campaign")
    imp.add_argument("--list", dest="list_name", metavar="LIST",
                     help="put the imported leads on this lead list (its id or name); they join the campaigns "
                          "it is assigned to")
    imp.add_argument("--report", type=Path, help="write the per-row report (CSV) to this file")
    imp.add_argument("--label", help="the import's name in the CRM (default: the file's name)")
    imp.set_defaults(handler=run_import)


class ProgressLine:
    """`reading [#####.....]  42%` on a terminal, redrawn when the percentage changes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._shown: tuple[str, int] | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        percent = min(100, done * 100 // max(total, 1))
        if self._shown == (phase, percent):
            return
        self._shown = (phase, percent)
        filled = percent * 30 // 100
        self.stream.write(f"\r{PHASES.get(phase, phase):<10} [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}%")
        self.stream.flush()

    def finish(self) -> None:
        if self._shown is not None:
            self.stream.write("\r" + " " * 50 + "\r")
            self.stream.flush()


def run_import(args: argparse.Namespace) -> int:
    settings = from_environment()
    try:
        mapping = parse_mapping(args.mapping)
    except MappingError as error:
        raise UserError(f"--map: {error}") from None
    if args.file.is_dir():
        raise UserError(f"cannot read {args.file}: it is a directory, not a CSV file")
    if not args.file.is_file():
        raise UserError(f"cannot read {args.file}: no such file")
    if args.report is not None and not args.report.parent.is_dir():
        raise UserError(f"--report {args.report}: the directory {args.report.parent} does not exist")
    try:
        book = load_rulebook()
    except RuleDataError as error:
        raise UserError(f"the rule data is unusable ({error}), so nothing can be scrubbed", exit_code=1) from None
    plan = ImportPlan(new_import_id(), args.file, mapping, args.label or args.file.name, args.campaign, args.report,
                      list_id=args.list_name)
    progress = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        outcome = asyncio.run(_import(settings, plan, book, progress))
    except ImportInputError as error:
        raise UserError(f"{args.file.name}: {error}") from None
    except (DatabaseUnavailable, MigrationError) as error:
        raise UserError(f"the CRM database is not usable ({error}); nothing was imported", exit_code=3) from None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
        raise UserError(f"lost PostgreSQL at {describe_server(settings.pg_dsn)} ({error}); nothing was imported",
                        exit_code=3) from None
    except RedisError as error:
        raise UserError(f"cannot use Redis at {settings.redis_url} ({error}); nothing was imported",
                        exit_code=1) from None
    finally:
        if progress is not None:
            progress.finish()
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    report = f"; report {args.report}" if args.report else ""
    print(f"imported {plan.label} as {plan.import_id}: {outcome.counts.summary()}{report}")
    return 0


async def _list_id(conn: asyncpg.Connection, given: str) -> str:
    """The list `given` names: its id, else its (unique) name."""
    if await conn.fetchval("SELECT true FROM lead_lists WHERE list_id = $1", given):
        return given
    found = [row["list_id"] for row in await conn.fetch(
        "SELECT list_id FROM lead_lists WHERE name = $1 ORDER BY list_id", given)]
    if len(found) == 1:
        return str(found[0])
    if found:
        raise ImportInputError(f"several lists are named {given!r} ({', '.join(found)}): give its id with --list")
    raise ImportInputError(f"there is no lead list {given!r} in the CRM: make it with 'dialer lists create'")


async def _import(settings: Settings, plan: ImportPlan, book: RuleBook, progress: ProgressLine | None) -> ImportOutcome:
    await ensure_schema(settings.pg_dsn)
    conn = await connect(settings.pg_dsn)
    redis = aioredis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=30.0)
    try:
        if plan.campaign_id is not None and not await conn.fetchval(
            "SELECT true FROM campaigns WHERE campaign_id = $1", plan.campaign_id
        ):
            raise ImportInputError(f"there is no campaign {plan.campaign_id!r} in the CRM")
        if plan.list_id is not None:
            plan = replace(plan, list_id=await _list_id(conn, plan.list_id))
        await redis.ping()
        scrubber = BatchScrubber(DncStore(redis, settings.redis_prefix), book)
        return await import_leads(plan, conn, scrubber, now=datetime.now(UTC), progress=progress)
    finally:
        await redis.aclose()
        await conn.close()
