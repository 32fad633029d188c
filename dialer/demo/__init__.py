"""`dialer demo`: the README's main job, a predictive campaign on the real stack.

It brings PostgreSQL, Redis and the development Asterisk up, loads a demo campaign of a few
hundred leads of the simulated public network spread over twelve states and six time zones
(people, machines, busy, no answer, unallocated, people who press 9; some on DNC lists),
logs in agents (a baresip softphone when baresip is installed, the rest simulated
`Local/...@agent-sim` agents), runs the campaign for a few minutes with a live progress line,
and ends with a summary recounted from the CRM rows.

Isolation: the demo writes to its own database (the configured one's name + `_demo`), its own
Redis key prefix (`<prefix minus ':'>-demo:`, cleared at each start), its own outbox and
recordings folder (`<recordings dir>/demo`); only the recordings keyring is shared, so
`dialer recording open` reads the demo's recordings too.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TextIO

import asyncpg
import redis.asyncio as aioredis

from compliance_rules.policy import DEFAULT_MARGIN
from compliance_rules.ruleset import RuleBook, RuleDataError, load_rulebook
from dialer.cli import UserError
from dialer.commands.stack import prepare_stack
from dialer.demo.campaign import (
    DEMO_TUNING,
    DemoAgent,
    DemoError,
    DemoRun,
    DemoSummary,
    Progress,
    real_clock,
    run_demo,
    shifted_clock,
)
from dialer.demo.leads import DemoLead, demo_leads, dialable_at, gate_start, open_states
from dialer.demo.report import progress_line, summary_text
from dialer.demo.softphone import AgentSoftphone, baresip_installed, long_tone
from dialer.logs import configure_logging
from dialer.provision.asterisk import AsteriskInstance, ProvisionError
from dialer.provision.cluster import Cluster
from dialer.provision.credentials import CredentialsError
from dialer.runtime.errors import Refused
from dialer.serve import StartupError, dialer_services
from dialer.settings import AriNode, Settings, from_environment
from dialer.web.users import UserRole, UserStore

MIN_DIALABLE = 60  # leads dialable at the gate's start, below which `--gate-time auto` moves it
SOFTPHONE_ENDPOINT = "agent1001"


def demo_settings(base: Settings) -> Settings:
    """The user's settings pointed at the demo's own database, Redis prefix, outbox and
    recordings folder (same servers, same Asterisk and its phones' credentials, same recordings keyring)."""
    parts = urllib.parse.urlsplit(base.pg_dsn)
    database = (parts.path.lstrip("/") or "dialer") + "_demo"
    return dataclasses.replace(
        base,
        pg_dsn=urllib.parse.urlunsplit(parts._replace(path=f"/{database}")),
        redis_prefix=f"{base.redis_prefix.rstrip(':')}-demo:",
        state_root=str(base.state_dir.parent / f"{base.instance}-demo"),
        recordings_root=str(base.recordings_dir / "demo"),
        recording_keys_root=str(base.recording_keys_dir),
        sip_credentials_path=str(base.sip_credentials_file),
    )


def _app_connected(instance: AsteriskInstance, app: str) -> bool:
    """Is some program (a `dialer serve`) connected to Asterisk as the ARI app `app` now?

    Not `/applications`: an app with endpoint subscriptions stays listed there after its
    WebSocket has closed. The live sessions are what `ari show websocket sessions` lists.
    """
    output = instance.cli("ari show websocket sessions")
    # Columns: connection id, type, remote address, state, apps (comma-separated).
    for line in output.splitlines()[2:]:
        columns = line.split()
        if len(columns) >= 5 and app in columns[4].split(","):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class GatePlan:
    """How the gate's clock runs: `start` None for the real clock, else the instant its
    simulated clock starts at (then running at the real pace); `message` says so to the user."""

    start: datetime | None
    message: str


def gate_plan(choice: str, leads: list[DemoLead], book: RuleBook, now: datetime,
              run_seconds: float) -> GatePlan:
    """The gate's clock for `--gate-time choice` at `now` (pure: `now` is given, so tests fix it)."""
    def at(instant: datetime) -> str:
        return f"{instant:%H:%M} UTC" if instant.date() == now.date() else f"{instant:%Y-%m-%d %H:%M} UTC"

    def states(instant: datetime) -> str:
        return ", ".join(open_states(leads, instant, book)) or "none"

    if choice not in ("auto", "now"):
        try:
            instant = datetime.fromisoformat(choice.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--gate-time must be 'auto', 'now' or an ISO-8601 instant, got {choice!r}.") from None
        instant = (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).astimezone(UTC)
        return GatePlan(instant, f"Gate clock: simulated, starting at {instant:%Y-%m-%d %H:%M} UTC "
                                 f"(--gate-time); {len(dialable_at(leads, instant, book))} demo leads dialable then "
                                 f"(inside their calling window, on no DNC list), in {states(instant)}.")
    # A small `--leads` could never reach MIN_DIALABLE: half of its leads off DNC lists will do.
    minimum = min(MIN_DIALABLE, max(1, sum(1 for lead in leads if lead.dnc is None) // 2))
    start = gate_start(leads, now, book, minimum) if choice == "auto" else now
    dialable_now = len(dialable_at(leads, now, book))
    if start == now:
        message = (f"Gate clock: real ({at(now)}); {dialable_now} demo leads dialable now (inside their calling "
                   f"window, on no DNC list), in {states(now)}.")
        closing = [state for state in open_states(leads, now, book)
                   if state not in open_states(leads, now + timedelta(seconds=run_seconds), book)]
        if closing:
            # Not an error: the demo shows the gate closing a window as the real clock crosses it.
            message += (f" {', '.join(closing)} reach their last launch ({DEFAULT_MARGIN.seconds // 60} min before "
                        "closing) during the run: the gate blocks their leads from then on (outside_calling_window).")
        if not dialable_now:
            message += " The gate will block every dial (outside_calling_window)."
        return GatePlan(None, message)
    return GatePlan(start, f"It is {at(now)}: only {dialable_now} demo leads are dialable (inside their calling "
                           f"window, on no DNC list; the demo wants {minimum}), so the gate's clock starts at {at(start)} and runs "
                           f"at the real pace from there ({len(dialable_at(leads, start, book))} dialable then, "
                           f"in {states(start)}); --gate-time now keeps the real clock.")


class ProgressDisplay:
    """The live progress line: rewritten in place on a terminal, a line every 10 s otherwise."""

    def __init__(self, stream: TextIO, columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.columns = columns
        self._printed_at = 0.0
        self._open = False

    def __call__(self, progress: Progress) -> None:
        line = progress_line(progress)
        if self.tty:
            # Cut to the terminal's width: a wrapped line cannot be rewritten in place (the
            # carriage return goes back to its last row only), so each refresh would add rows.
            self.stream.write("\r\x1b[K" + line[:max(20, self.columns() - 1)])
            self._open = True
        elif time.monotonic() - self._printed_at >= 10:
            self.stream.write(line + "\n")
            self._printed_at = time.monotonic()
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


async def _clear_prefix(redis_url: str, prefix: str) -> None:
    """The demo's Redis keys start afresh each run (its DNC lists, opt-outs, agents, caps)."""
    client = aioredis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start:start + 500])
    finally:
        await client.aclose()


DEMO_SUPERVISOR = "demo-supervisor"


async def _run(settings: Settings, run: DemoRun, gate_start_at: datetime | None,
               display: ProgressDisplay, say: Callable[[str], None]) -> tuple[DemoSummary, str]:
    await _clear_prefix(settings.redis_url, settings.redis_prefix)
    async with dialer_services(settings, gate_clock=None if gate_start_at is None else run.gate_now,
                               drain_seconds=5, campaign_overrides=DEMO_TUNING) as services:
        try:
            summary = await run_demo(services, run, display, say)
        finally:
            display.close()
        return summary, await demo_supervisor_account(UserStore(services.store))


async def demo_supervisor_account(users: UserStore) -> str:
    """The demo database's supervisor account, with a new password each run (printed once)."""
    password = secrets.token_urlsafe(12)
    if await users.get(DEMO_SUPERVISOR) is None:
        await users.create(DEMO_SUPERVISOR, UserRole.SUPERVISOR, password)
    else:
        await users.set_password(DEMO_SUPERVISOR, password)
    return password


def console_text(settings: Settings, password: str, *, asterisk_stopped: bool = False) -> str:
    """Where the demo's figures are on the supervisor console, and how to serve it.

    `dialer serve` needs Asterisk: when the demo stopped the one it started, the first step
    starts it again. The variables give `dialer serve` the demo's database, Redis prefix,
    outbox, recordings and the phones' SIP credentials file (the demo's settings)."""
    lines = ["", "Supervisor console (the demo campaign's figures: wallboard, KPIs, pipeline, recordings):"]
    if asterisk_stopped:
        lines.append("  .venv/bin/dialer asterisk start   (the demo stopped the Asterisk it started; "
                     "'dialer asterisk stop' afterwards)")
    lines += [
        f"  DIALER_PG_DSN='{settings.pg_dsn}' DIALER_REDIS_PREFIX='{settings.redis_prefix}' "
        f"DIALER_STATE_DIR='{settings.state_dir}' DIALER_RECORDINGS_DIR='{settings.recordings_dir}' "
        f"DIALER_SIP_CREDENTIALS_FILE='{settings.sip_credentials_file}' .venv/bin/dialer serve",
        f"  then open http://{settings.http_host}:{settings.http_port}/supervisor and sign in as "
        f"{DEMO_SUPERVISOR} / {password}",
        "  (KPIs: period Today; the campaign is in the Campaign box's list)",
    ]
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    if not 0 < args.minutes <= 60:
        raise UserError(f"--minutes must be more than 0 and at most 60, got {args.minutes}.")
    if not 12 <= args.leads <= 5000:
        raise UserError(f"--leads must be between 12 and 5000, got {args.leads}.")
    if not 0 <= args.agents <= 20:
        raise UserError(f"--agents must be between 0 and 20, got {args.agents}.")
    base = from_environment()
    settings = demo_settings(base)
    out = sys.stderr if args.json else sys.stdout
    if "DIALER_LOG_LEVEL" not in os.environ:
        # The progress line owns the terminal: only warnings and errors are logged, unless asked.
        configure_logging("warning", base.log_format)

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    try:
        book = load_rulebook()
    except RuleDataError as error:
        raise UserError(f"The compliance rule data cannot be loaded: {error}") from None
    leads = demo_leads(args.leads, args.seed)
    plan = gate_plan(args.gate_time, leads, book, datetime.now(UTC), args.minutes * 60)
    gate_start_at = plan.start
    if gate_start_at is None:
        gate_now, gate_clock = real_clock, "real"
    else:
        gate_now, gate_clock = shifted_clock(gate_start_at), f"simulated, started at {gate_start_at:%Y-%m-%d %H:%M} UTC"
    say(plan.message)

    started = time.monotonic()
    say("Bringing up PostgreSQL, Redis and Asterisk...")
    instance = prepare_stack(settings, start_asterisk=False)
    assert instance is not None
    cluster: Cluster | None = None
    if args.nodes is not None:
        # The cluster of `dialer stack up --nodes N`; the demo's dialer drives every node
        # (`[[nodes]]`) and its softphone registers at the edge (docs/cluster.md).
        if instance.pid() is not None:
            raise UserError(f"The single Asterisk instance {instance.config.name} is running on the ports the "
                            "cluster uses: stop it first ('dialer stack down').")
        try:
            cluster = Cluster.for_settings(instance.install, settings, args.nodes)
        except ValueError as error:
            raise UserError(f"Cannot lay out {args.nodes} nodes: {error}.") from None
        instance = cluster.nodes[0]
        settings = dataclasses.replace(settings, nodes=tuple(
            AriNode(node.config.name, node.ari_url, node.config.ari_user, node.config.ari_password,
                    max_calls=settings.node_max_calls, max_setups=settings.node_max_setups,
                    setups_per_second=settings.node_setups_per_second)
            for node in cluster.nodes))
    already_running = instance.pid() is not None and instance.ari_answers() is not None
    if already_running and _app_connected(instance, settings.ari_app):
        raise UserError(f"Another dialer (dialer serve?) is connected to Asterisk as ARI app {settings.ari_app!r}: "
                        "stop it first, the demo would take over its channels.")
    try:
        if cluster is not None:
            cluster.start()
            say(f"Cluster: {len(cluster.nodes)} Asterisk nodes behind the Kamailio edge on "
                f"{cluster.edge.config.edge}; the demo drives all of them.")
        else:
            instance.start()
    except ProvisionError as error:
        if cluster is not None and not already_running:
            cluster.stop()
        raise UserError(str(error)) from None
    say(f"Asterisk {instance.install.version} answers on {instance.ari_url} ({time.monotonic() - started:.1f} s); "
        f"demo database {settings.pg_dsn.rsplit('/', 1)[-1]!r}, Redis prefix {settings.redis_prefix!r}.")
    phone: AgentSoftphone | None = None
    try:
        agents = [DemoAgent(f"demo-sim-{i}", f"Local/demo{i}@agent-sim", f"Simulated agent {i}")
                  for i in range(1, args.agents + 1)]
        if not args.no_softphone and baresip_installed():
            tone = long_tone(settings.cache_dir / "demo" / "agent-tone-long.wav", int(args.minutes * 60) + 600)
            phone = AgentSoftphone(settings.cache_dir / "demo" / "baresip", SOFTPHONE_ENDPOINT,
                                   instance.sip_credentials(SOFTPHONE_ENDPOINT).password,
                                   instance.config.edge_sip_port or instance.config.sip_port, tone)
            phone.start()
            agents.insert(0, DemoAgent(f"demo-{SOFTPHONE_ENDPOINT}", SOFTPHONE_ENDPOINT, "Softphone agent (baresip)"))
        elif not args.no_softphone:
            say("baresip is not installed: every agent is a simulated Local agent.")
        if not agents:
            raise UserError("The demo needs at least one agent: give --agents 1 or more, or allow the softphone.")
        run = DemoRun(leads=leads, agents=agents, seconds=args.minutes * 60, book=book, gate_now=gate_now,
                      gate_clock=gate_clock)
        try:
            summary, password = asyncio.run(_run(settings, run, gate_start_at, ProgressDisplay(out), say))
        except (DemoError, StartupError, Refused, RuntimeError, OSError, asyncpg.PostgresError) as error:
            raise UserError(f"The demo failed: {error}") from None
    except (RuntimeError, CredentialsError) as error:  # the softphone did not register
        raise UserError(f"The demo failed: {error}") from None
    finally:
        if phone is not None:
            phone.stop()
        if not already_running and not args.keep_running:
            if cluster is not None:
                cluster.stop()
            else:
                instance.stop()
    if args.json:
        print(json.dumps(summary.to_json(), default=str))
    else:
        print(summary_text(summary, settings.pg_dsn))
        print(f"\nDone in {time.monotonic() - started:.0f} s.")
    say(console_text(settings, password, asterisk_stopped=not already_running and not args.keep_running))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="the main job: a predictive demo campaign on the real stack")
    demo.add_argument("--minutes", type=float, default=3.0, help="how long the campaign dials (default 3)")
    demo.add_argument("--leads", type=int, default=360, help="demo leads to load (default 360)")
    demo.add_argument("--agents", type=int, default=4, help="simulated Local agents (default 4), besides the softphone")
    demo.add_argument("--no-softphone", action="store_true", help="no baresip softphone agent")
    demo.add_argument("--gate-time", default="auto", metavar="auto|now|ISO",
                      help="the gate's clock: auto (real, unless fewer than 60 leads, or half of a smaller "
                           "list, are inside their window now: "
                           "then the next quarter hour when they are), now (always real), or an instant")
    demo.add_argument("--seed", type=int, default=2026, help="the lead mix's random seed")
    demo.add_argument("--keep-running", action="store_true", help="leave Asterisk running afterwards")
    demo.add_argument("--nodes", type=int, metavar="N",
                      help="run on a cluster: N Asterisk nodes behind a Kamailio edge, the demo driving them all")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object (progress to stderr)")
    demo.set_defaults(handler=_demo)
