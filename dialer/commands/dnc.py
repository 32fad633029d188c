"""`dialer check` and `dialer dnc ...`: the gate and its lists for auditors, operators and tests.

    dialer check NUMBER [--zip ZIP] [--state XX] [--at ISO-8601-UTC] [--campaign ID] [--policy FILE] --json
    dialer dnc import FILE --list federal|state:XX|internal|litigator|optout [--date YYYY-MM-DD] [--changes]
    dialer dnc add|remove|check NUMBER --list ...
    dialer dnc status

`check` exits 0 when the contact is allowed, 1 when it is blocked, 2 when it cannot be checked as asked
(an unknown `--campaign`, an invalid option) and 3 when the CRM database is needed and does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from compliance_rules.audit import AuditSink, JsonLinesAuditSink
from compliance_rules.freshness import (
    FEDERAL,
    FUTURE_TOLERANCE,
    LITIGATOR,
    FreshnessStatus,
    judge,
    list_freshness,
    rule_for,
)
from compliance_rules.gate import ComplianceGate
from compliance_rules.importer import (
    ImportFormatError,
    ParseStats,
    ProgressBar,
    iter_changes,
    iter_numbers,
    open_source,
)
from compliance_rules.model import US_STATE_CODES, ContactRequest, DialMode
from compliance_rules.numbers import NumberInfo, parse_number
from compliance_rules.optout import OptOutError, OptOutSource
from compliance_rules.policy import CampaignPolicy, PolicyError, load_policy
from compliance_rules.ruleset import RuleBook, RuleDataError, load_rulebook
from compliance_rules.store import DncStore, ListNameError, check_list_name
from crm_bridge.outbox import OutboxError
from dialer.cli import UserError
from dialer.commands import CLI_OUTBOX, COMMAND_OUTBOX_LOCK_WAIT
from dialer.runtime.optout import OptOuts
from dialer.settings import Settings, from_environment

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `check` and `dnc` subcommands."""
    check = subparsers.add_parser("check", help="ask the compliance gate whether a number may be contacted now")
    check.add_argument("number", help="phone number (any US format or E.164)")
    check.add_argument("--zip", dest="zip_code", help="the lead's ZIP code")
    check.add_argument("--state", help="the lead's state (two letters)")
    check.add_argument("--at", help="decide as of this instant (ISO-8601, UTC unless an offset is given)")
    check.add_argument("--campaign", help="decide under this campaign's rules (its window, purpose, dial mode, "
                       "required consents), recorded with the decision; an unknown campaign is refused")
    check.add_argument("--policy", type=Path, help="campaign policy file (JSON or YAML)")
    check.add_argument("--dial-mode", choices=[m.value for m in DialMode], help="override the campaign's dial mode")
    check.add_argument("--lead-id", help="lead id (frequency caps count per lead)")
    check.add_argument("--audit-log", type=Path, help="append the decision as a JSON line to this file")
    check.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    check.set_defaults(handler=run_check)

    dnc = subparsers.add_parser("dnc", help="manage Do Not Call lists and opt-outs in Redis")
    actions = dnc.add_subparsers(dest="dnc_command", metavar="ACTION", required=True)
    list_help = "federal, state:XX, internal, litigator or optout"
    imp = actions.add_parser("import", help="import a registry file (one number per line; zipped or not) or a change list")
    imp.add_argument("file", type=Path)
    imp.add_argument("--list", required=True, dest="list_name", help=list_help)
    imp.add_argument("--date", help="date of the list copy (YYYY-MM-DD; default today, UTC)")
    imp.add_argument("--changes", action="store_true", help="the file is a change list of additions and deletions")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(handler=run_import)
    for action, text in (("add", "add a number to a list"), ("remove", "remove a number from a list"), ("check", "is a number on a list")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("number")
        sub.add_argument("--list", required=True, dest="list_name", help=list_help)
        sub.set_defaults(handler=run_single, dnc_action=action)
    opt = actions.add_parser("opt-out", help="record an opt-out (effective for the very next decision)")
    opt.add_argument("number")
    opt.add_argument("--source", default=OptOutSource.AGENT.value, choices=[s.value for s in OptOutSource])
    opt.set_defaults(handler=run_opt_out)
    status = actions.add_parser(
        "status", help="show each list's copy date, the last day it may be used, and what is due soon"
    )
    status.add_argument("--json", action="store_true", help="print the lists as one JSON object")
    status.set_defaults(handler=run_status)


def _run(settings: Settings, work: Callable[[DncStore], Awaitable[T]]) -> T:
    """Run `work` against Redis; an unreachable Redis is one clear sentence, exit status 1."""
    try:
        return asyncio.run(_with_client(settings, work, socket_timeout=10.0))
    except (RedisError, OSError) as error:
        raise UserError(f"cannot use Redis at {settings.redis_url}: {error}", exit_code=1) from None


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(f"--at {text!r} is not an ISO-8601 date-time such as 2026-03-02T14:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _parse_list(name: str) -> str:
    try:
        return check_list_name(name)
    except ListNameError as error:
        raise UserError(str(error)) from None


def _policy(args: argparse.Namespace) -> CampaignPolicy:
    policy = CampaignPolicy()
    if args.policy is not None:
        try:
            policy = load_policy(args.policy)
        except PolicyError as error:
            raise UserError(str(error)) from None
    if args.campaign:
        policy = CampaignPolicy(**{**policy.__dict__, "campaign_id": args.campaign})
    return policy


def _rulebook() -> RuleBook | None:
    try:
        return load_rulebook()
    except RuleDataError as error:
        print(f"dialer: rule data unusable ({error}); every decision is blocked", file=sys.stderr)
        return None


def _logs_to_stderr() -> None:
    """Keep stdout for the command's output (`--json` is parsed by scripts)."""
    if not structlog.is_configured():
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def run_check(args: argparse.Namespace) -> int:
    _logs_to_stderr()
    settings = from_environment()
    at = _parse_at(args.at)
    if args.zip_code is not None and not (args.zip_code[:5].isdigit() and len(args.zip_code) in (5, 9, 10)):
        raise UserError(f"--zip {args.zip_code!r} is not a ZIP code (5 digits, or ZIP+4)")
    if args.state is not None and args.state.upper() not in US_STATE_CODES:
        raise UserError(f"--state {args.state!r} is not a US state's two-letter code (e.g. NY)")
    if args.audit_log is not None and (args.audit_log.is_dir() or not args.audit_log.parent.is_dir()):
        # Found only when the decision is written, it would block the number as "gate unavailable".
        raise UserError(f"--audit-log {args.audit_log}: give a file in an existing directory")
    policy = _policy(args)
    request = ContactRequest(
        args.number,
        lead_id=args.lead_id,
        zip_code=args.zip_code,
        state=args.state.upper() if args.state else None,
        dial_mode=DialMode(args.dial_mode) if args.dial_mode else None,
    )
    book = _rulebook()

    async def work(store: DncStore) -> dict[str, Any]:
        # The decision is audited like any other: into the CRM's compliance_decisions table
        # through an outbox of the CLI's own (delivered now, or on the next run if PostgreSQL
        # is down), and to --audit-log as JSON lines when asked.
        from compliance_rules.audit import FanOutAuditSink
        from crm_bridge.migrate import MigrationError, ensure_schema
        from crm_bridge.outbox import Outbox
        from crm_bridge.pg import DatabaseUnavailable
        from dialer.runtime.gate import OutboxAuditSink, gate_options

        try:
            await ensure_schema(settings.pg_dsn)
        except (DatabaseUnavailable, MigrationError) as error:
            if args.campaign:
                raise _unreadable(args.campaign, error) from None
            print(f"dialer: the CRM database is not usable ({error}); the audit row waits locally", file=sys.stderr)
        decided_under = policy if args.campaign is None else await _campaign_policy(
            settings, args.campaign, policy if args.policy is not None else None)
        async with Outbox(settings.state_dir, settings.pg_dsn, name=CLI_OUTBOX, connect_timeout=2.0,
                          lock_wait=COMMAND_OUTBOX_LOCK_WAIT) as outbox:
            sinks: list[AuditSink] = [OutboxAuditSink(outbox)]
            if args.audit_log:
                sinks.append(JsonLinesAuditSink(args.audit_log))
            gate = ComplianceGate(store, FanOutAuditSink(sinks), book, gate_options(settings))
            decision = await gate.decide(request, decided_under, at)
            if not await outbox.flush(3.0):
                print("dialer: PostgreSQL did not take the audit row yet; it is kept, and sent when PostgreSQL "
                      "answers (by a running 'dialer serve', or the next command)", file=sys.stderr)
                await outbox.close(timeout=0.0)  # waited enough: not 5 s more on the way out
        record = decision.to_record()
        record["required_dial_mode"] = decision.required_dial_mode.value if decision.required_dial_mode else None
        return record

    # The gate fails closed by itself when Redis is unreachable: no UserError path here.
    try:
        record = asyncio.run(_with_client(settings, work))
    except OutboxError as error:
        raise UserError(f"the decision could not be audited, so it is not given: {error}", exit_code=1) from None
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"{record['phone']}: {'ALLOWED' if record['allowed'] else 'BLOCKED'}")
        for zone, local in zip(record["timezones"], record["local_times"], strict=True):
            print(f"  {zone}: {local}")
        for reason in record["reasons"]:
            print(f"  - {reason['code']}: {reason['message']} [{reason['citation']}]")
    return 0 if record["allowed"] else 1


def _unreadable(campaign_id: str, error: Exception) -> UserError:
    return UserError(f"Campaign {campaign_id!r} cannot be read: {error}".rstrip(".") + ".", exit_code=3)


async def _campaign_policy(settings: Settings, campaign_id: str, from_file: CampaignPolicy | None) -> CampaignPolicy:
    """The policy a check with `--campaign` is decided under: the campaign's own (its window,
    purpose, dial mode and required consents, as the dialer decides its calls), or the `--policy`
    file's; a campaign the CRM does not know is refused (a typo would otherwise be audited as a
    decision for a campaign that does not exist)."""
    from crm_bridge.pg import DatabaseUnavailable
    from crm_bridge.store import CrmStore
    from dialer.runtime.gate import policy_for_campaign

    try:
        crm = await CrmStore.open(settings.pg_dsn, max_size=1)
        try:
            campaign = await crm.get_campaign(campaign_id)
        finally:
            await crm.close()
    except DatabaseUnavailable as error:
        raise _unreadable(campaign_id, error) from None
    if campaign is None:
        raise UserError(f"No campaign {campaign_id!r} in the CRM: give an existing campaign's id ('dialer campaign list').")
    return from_file if from_file is not None else policy_for_campaign(campaign)


async def _with_client(settings: Settings, work: Callable[[DncStore], Awaitable[T]], socket_timeout: float = 0.5) -> T:
    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=socket_timeout)
    try:
        return await work(DncStore(client, settings.redis_prefix))
    finally:
        await client.aclose()


def run_import(args: argparse.Namespace) -> int:
    settings = from_environment()
    name = _parse_list(args.list_name)
    today = datetime.now(UTC).date()
    try:
        list_date = date.fromisoformat(args.date) if args.date else today
    except ValueError:
        raise UserError(f"--date {args.date!r} is not a YYYY-MM-DD date") from None
    _refuse_a_date_the_gate_distrusts(name, list_date, today)
    try:
        total = open_source(args.file).total_bytes
    except ImportFormatError as error:
        raise UserError(str(error)) from None
    progress = None if args.quiet else _TrackedProgress(ProgressBar(total, sys.stderr, f"{name}"), total)
    stats = ParseStats()

    async def work(store: DncStore) -> str:
        if args.changes:
            added, deleted = await store.apply_changes(name, iter_changes(args.file, stats, progress), list_date)
            return f"{name}: {added} added, {deleted} deleted, {stats.rejected} unreadable lines; list date {list_date}"
        numbers = _refusing_a_copy_without_numbers(iter_numbers(args.file, stats, progress), args.file, name, stats)
        result = await store.import_full(name, numbers, list_date, stats)
        return (
            f"{name}: {result.numbers} numbers in {result.area_codes} area codes, "
            f"{stats.rejected} unreadable lines; list date {result.list_date}"
        )

    try:
        summary = _run(settings, work)
    except ImportFormatError as error:
        raise UserError(str(error)) from None
    finally:
        if progress is not None and progress.stopped_short:
            print(file=sys.stderr)  # the bar stopped short: what follows starts on its own line
    print(summary)
    if stats.rejected:
        print(f"unreadable lines (first {len(stats.rejected_examples)}): {stats.rejected_examples}", file=sys.stderr)
    return 0


def _refuse_a_date_the_gate_distrusts(name: str, list_date: date, today: date) -> None:
    """A copy dated after `today` (UTC) is refused here when the gate would judge it stale at
    once (compliance_rules.freshness: a copy dated ahead is trusted only as an early edition,
    dated on one of its list's publication days and at most FUTURE_TOLERANCE ahead): the
    federal registry and the litigator list have no early editions, so any later date is a
    mistake that would leave the list unusable (or, before, trusted for a month)."""
    if list_date <= today:
        return
    if list_date > today + FUTURE_TOLERANCE:
        raise UserError(f"--date {list_date} is more than {FUTURE_TOLERANCE.days} days ahead: give the edition's date")
    try:
        rule = rule_for(load_rulebook(), name)
    except RuleDataError:
        rule = None  # no rule data: the gate blocks every decision anyway; only the lists' own nature is known
    if rule is None:
        if name in (FEDERAL, LITIGATOR):
            raise UserError(f"--date {list_date} is ahead of today ({today}, UTC) and a {name} list has no early "
                            "editions: give the day the copy was downloaded.")
        return
    if judge(name, rule, list_date, today, warning_days=0).status is FreshnessStatus.STALE:
        if rule.published:
            editions = ", ".join(f"{month:02d}-{day:02d}" for month, day in rule.published)
            raise UserError(f"--date {list_date} is ahead of today ({today}, UTC) and is not a publication day of "
                            f"{name} ({editions}), so the gate would treat the copy as stale: give the day it was "
                            "downloaded or its edition's date.")
        raise UserError(f"--date {list_date} is ahead of today ({today}, UTC) and a {name} list has no early "
                        "editions, so the gate would treat the copy as stale: give the day it was downloaded.")


class _TrackedProgress:
    """The import's progress bar, knowing whether it was left drawn short of 100% (its line is
    then unfinished: an error sentence must not be glued to it)."""

    def __init__(self, bar: ProgressBar, total: int) -> None:
        self.bar = bar
        self.total = max(total, 1)
        self.done: int | None = None  # None: not drawn yet

    def __call__(self, done: int) -> None:
        self.done = done
        self.bar(done)

    @property
    def stopped_short(self) -> bool:
        return self.done is not None and self.done * 100 // self.total < 100


def _refusing_a_copy_without_numbers(chunks: Iterable[npt.NDArray[np.int64]], path: Path, name: str,
                                     stats: ParseStats) -> Iterator[npt.NDArray[np.int64]]:
    """`chunks`, but a full copy in which not one number could be read is refused before the
    store dates the list: a wrong or damaged file would otherwise be recorded as today's copy
    of the list (`dialer dnc status` "ok"), and the gate would treat a stale or empty list as
    current (47 CFR 64.1200(c)(2)(i)(D): a registry copy at most 31 days old)."""
    read = 0
    for chunk in chunks:
        read += len(chunk)
        yield chunk
    if read == 0:
        found = (f"none of its {stats.rejected} lines is a 10-digit US number (first: {stats.rejected_examples[0]!r})"
                 if stats.rejected else "it holds no numbers")
        raise UserError(f"{path} is not a copy of the {name} list: {found}; the list was left as it was.")


def _number(raw: str) -> NumberInfo:
    number = parse_number(raw)
    if number.e164 is None:
        raise UserError(f"{raw!r} is not a valid US phone number")
    return number


def run_single(args: argparse.Namespace) -> int:
    settings = from_environment()
    name = _parse_list(args.list_name)
    number = _number(args.number)

    async def work(store: DncStore) -> bool:
        if args.dnc_action == "check":
            return await store.contains(name, number)
        await store.set_membership(name, number, args.dnc_action == "add")
        return bool(args.dnc_action == "add")

    present = _run(settings, work)
    if args.dnc_action == "check":
        print(f"{number.e164} is {'on' if present else 'not on'} the {name} list")
        return 0 if present else 1
    print(f"{number.e164} {'added to' if present else 'removed from'} the {name} list")
    return 0


def run_opt_out(args: argparse.Namespace) -> int:
    settings = from_environment()

    async def work(store: DncStore) -> tuple[str, bool]:
        # The one opt-out path (dialer.runtime.optout): the CRM's record first, durable in an
        # outbox of the CLI's own (delivered now, or by dialer serve when PostgreSQL is down),
        # then the Redis list every gate reads.
        from crm_bridge.outbox import Outbox

        async with Outbox(settings.state_dir, settings.pg_dsn, name=CLI_OUTBOX, connect_timeout=2.0,
                          lock_wait=COMMAND_OUTBOX_LOCK_WAIT) as outbox:
            try:
                result = await OptOuts(store, outbox).record(args.number, args.source)
            except (RedisError, OSError) as error:
                # The record is durable already (it is written first): say so, or the admin
                # believes nothing happened (was: only "cannot use Redis").
                raise UserError(f"the opt-out is recorded for the CRM, but Redis at {settings.redis_url} does not "
                                f"answer ({error}), so the gate does not know it yet: run this again once Redis "
                                "answers (a start of dialer serve also puts it on the list).", exit_code=1) from None
            delivered = await outbox.flush(3.0)
            await outbox.close(timeout=0.0)  # waited enough: not 5 s more on the way out
        return result.phone, delivered

    try:
        phone, delivered = _run(settings, work)
    except OptOutError as error:
        raise UserError(str(error)) from None
    except OutboxError as error:
        raise UserError(f"the opt-out was not recorded: {error}", exit_code=1) from None
    print(f"{phone} opted out" + ("" if delivered else " (the CRM record waits locally until PostgreSQL answers; a running 'dialer serve' delivers it)"))
    return 0


_STATUS_WORDS = {
    FreshnessStatus.OK: "ok",
    FreshnessStatus.DUE_SOON: "DUE SOON",
    FreshnessStatus.STALE: "STALE",
    FreshnessStatus.MISSING: "missing",
}


def run_status(args: argparse.Namespace) -> int:
    """Every list with its copy date, deadline and status; exit 1 when a loaded copy is stale or
    the federal registry is missing (the gate blocks), so a cron job can alert on it."""
    settings = from_environment()
    versions = _run(settings, lambda store: store.versions())
    book = _rulebook()
    if book is None:
        raise UserError("the rule data is unusable, so list freshness cannot be judged", exit_code=1)
    judged = list_freshness(book, versions, datetime.now(UTC))
    others = sorted(name for name in versions if ":" not in name.removeprefix("state:") and name not in book.refresh)
    blocking = [f for f in judged if f.status is FreshnessStatus.STALE
                or (f.status is FreshnessStatus.MISSING and f.list_name == "federal")]
    if args.json:
        print(json.dumps({
            "lists": [f.to_record() | {"count": _count(versions, f.list_name)} for f in judged],
            "other_lists": {name: {"copy_date": versions[name], "count": _count(versions, name)} for name in others},
        }, indent=2))
        return 1 if blocking else 0
    for f in judged:
        if f.copy_date is None:
            line = f"{f.list_name:<10} {'-':<10}  {'-':<25} missing"
            if f.list_name.startswith("state:"):
                line += f" (the gate blocks leads in {f.list_name[6:]})"
            elif f.list_name == "federal":
                line += " (the gate blocks every lead)"
        else:
            until = f"usable through {f.deadline}" if f.deadline else "dated too far ahead"
            left = "" if f.days_left is None else (
                f" ({_days(f.days_left)} left)" if f.days_left >= 0 else f" (since {_days(-f.days_left)})")
            line = f"{f.list_name:<10} {f.copy_date.isoformat():<10}  {until:<25} {_STATUS_WORDS[f.status]}{left}"
            count = _count(versions, f.list_name)
            if count is not None:
                line += f", {count} numbers"
        print(f"{line}  [{f.rule}]")
    for name in others:
        count = _count(versions, name)
        print(f"{name:<10} {versions[name]:<10}  (kept current by the agency){'' if count is None else f', {count} numbers'}")
    due = [f.list_name for f in judged if f.status is FreshnessStatus.DUE_SOON]
    if due:
        print(f"due soon (within {book.refresh_warning_days} days): {', '.join(due)}: load a new copy", file=sys.stderr)
    if blocking:
        print(f"stale or missing, the gate blocks: {', '.join(f.list_name for f in blocking)}", file=sys.stderr)
    return 1 if blocking else 0


def _count(versions: dict[str, str], name: str) -> int | None:
    raw = versions.get(f"{name}:count")
    return int(raw) if raw and raw.isdigit() else None


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"
