"""`dialer serve`: the HTTP API and the call controller."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import datetime

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from crm_bridge.outbox import deliver_left_over
from dialer.access_log import AccessLog
from dialer.cli import UserError
from dialer.commands import COMMAND_OUTBOX_DELIVERY_SECONDS, COMMAND_OUTBOXES
from dialer.commands.config import log_caller_id_problems, require_usable
from dialer.provision.sipcheck import log_trunk_checks
from dialer.runtime.lease import ControllerLease
from dialer.serve import StartupError, dialer_services
from dialer.settings import Settings, from_environment
from dialer.tasks import owned_task

# A controller whose lease is over ends at once, without draining (draining would hang calls up
# that the controller taking over adopts); its supervisor (systemd) starts it again, on standby.
LEASE_LOST_EXIT = 75


def _lease_lost(lease: ControllerLease, why: str) -> None:
    structlog.get_logger("dialer.lease").error("lease_lost", why=why, token=lease.token, owner=lease.owner)
    print(f"dialer: the controller lease was lost ({why}): stopping at once", file=sys.stderr, flush=True)
    os._exit(LEASE_LOST_EXIT)


async def _take_lease(settings: Settings, stop: asyncio.Event) -> ControllerLease | None:
    """On standby until this controller holds the lease (None: stopped while waiting)."""
    owner = settings.controller_name or f"{socket.gethostname()}-{os.getpid()}"
    lease = ControllerLease(aioredis.from_url(settings.redis_url), settings.redis_prefix, owner)
    print(f"dialer: controller {owner} on standby, waiting for the controller lease", flush=True)
    waited = asyncio.get_running_loop().time()
    if not await lease.take(stop):
        return None
    waited = asyncio.get_running_loop().time() - waited
    structlog.get_logger("dialer.lease").warning("lease_taken", owner=owner, token=lease.token,
                                                 waited_seconds=round(waited, 2))
    print(f"dialer: controller {owner} active (lease token {lease.token})", flush=True)
    return lease


async def serve(settings: Settings, drain_seconds: float, *,
                gate_clock: Callable[[], datetime] | None = None) -> None:
    """`dialer serve` until SIGTERM/SIGINT: with a controller lease, on standby until it holds
    it. (`gate_clock`: the compliance gate's clock, for tests of several controllers.)"""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lease = await _take_lease(settings, stop) if settings.controller_lease else None
    if settings.controller_lease and lease is None:
        return
    if lease is None:
        await _serve_services(settings, drain_seconds, stop, lease, gate_clock)
        return
    try:
        async with owned_task(lease.hold(lambda why: _lease_lost(lease, why)), "controller-lease"):
            await _serve_services(settings, drain_seconds, stop, lease, gate_clock)
    finally:
        # Renewing has stopped (the task is awaited): releasing cannot race a last renewal.
        await lease.release()
        await lease.redis.aclose()


async def _serve_services(settings: Settings, drain_seconds: float, stop: asyncio.Event,
                          lease: ControllerLease | None, gate_clock: Callable[[], datetime] | None) -> None:
    try:
        async with dialer_services(settings, drain_seconds=drain_seconds, lease=lease,
                                   gate_clock=gate_clock) as services:
            runner = web.AppRunner(services.app, handle_signals=False, access_log_class=AccessLog)
            await runner.setup()
            site = web.TCPSite(runner, settings.http_host, settings.http_port)
            try:
                await site.start()
            except OSError as error:
                await runner.cleanup()
                raise UserError(
                    f"Cannot listen on {settings.http_host}:{settings.http_port} ({error.strerror}): "
                    "set DIALER_HTTP_PORT to a free port."
                ) from None
            print(
                f"dialer API on http://{settings.http_host}:{settings.http_port}/v1 (OpenAPI: /v1/openapi.json)",
                flush=True,
            )
            async with (owned_task(_startup_checks(settings), "startup-checks"),
                        owned_task(deliver_command_outboxes(settings), "command-outboxes")):
                await stop.wait()
            # Stop taking requests first; live calls are drained when the services close.
            await runner.shutdown()
            await runner.cleanup()
    except StartupError as error:
        raise UserError(str(error)) from None
    except BaseExceptionGroup as group:
        # A StartupError raised inside the services' task groups (Asterisk does not answer) reaches
        # here wrapped in exception groups: it is still the one sentence the admin must read.
        startup = _first_startup_error(group)
        if startup is None:
            raise
        raise UserError(str(startup)) from None


def _first_startup_error(error: BaseException) -> StartupError | None:
    if isinstance(error, StartupError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_startup_error(inner)
            if found is not None:
                return found
    return None


async def _startup_checks(settings: Settings) -> None:
    """Each carrier trunk checked once at start (a refused password or an untrusted certificate
    is one clear line in the log; Asterisk retries its registration itself), and every
    campaign's caller ID against the vouched numbers."""
    log = structlog.get_logger("dialer.deploy")
    await log_trunk_checks(settings.trunks, settings.tls_ca_file, log)
    await log_caller_id_problems(settings, log)


async def deliver_command_outboxes(settings: Settings, every: float = 30.0) -> None:
    """Deliver, now and then, what `dialer` commands left in their own outboxes while PostgreSQL
    did not answer them (`dialer dnc opt-out`, `dialer check`, `dialer recording open`,
    `dialer evidence`): the opt-out they reported "waits locally" reaches the CRM without
    anyone running another command."""
    log = structlog.get_logger("dialer.outbox")
    while True:
        for name in COMMAND_OUTBOXES:
            try:
                delivered = await deliver_left_over(settings.state_dir, settings.pg_dsn, name,
                                                    COMMAND_OUTBOX_DELIVERY_SECONDS)
            except Exception as error:  # an unreadable file: said, and tried again next time
                log.warning("command_outbox_not_delivered", outbox=name, error=repr(error))
                continue
            if delivered:
                log.warning("command_outbox_delivered", outbox=name, count=delivered)
        await asyncio.sleep(every)


def _serve_command(args: argparse.Namespace) -> int:
    if not 0 <= args.drain_seconds < math.inf:
        raise UserError(f"--drain-seconds must be a number of seconds, 0 or more, not {args.drain_seconds}")
    settings = from_environment()
    require_usable(settings)
    asyncio.run(serve(settings, args.drain_seconds))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the HTTP API (stops cleanly on SIGTERM/SIGINT)")
    serve.add_argument(
        "--drain-seconds", type=float, default=10.0,
        help="at shutdown, how long live calls and texts may go on before they are ended, and then how long "
             "the outbox may take to reach PostgreSQL (default 10)"
    )
    serve.set_defaults(handler=_serve_command)

