"""`dialer serve`: the HTTP API and the call controller."""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog
from aiohttp import web

from dialer.access_log import AccessLog
from dialer.cli import UserError
from dialer.commands.config import log_caller_id_problems, require_usable
from dialer.provision.sipcheck import log_trunk_checks
from dialer.serve import StartupError, dialer_services
from dialer.settings import Settings, from_environment


async def _serve(settings: Settings, drain_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with dialer_services(settings, drain_seconds=drain_seconds) as services:
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
            trunk_checks = asyncio.create_task(_startup_checks(settings), name="startup-checks")
            await stop.wait()
            trunk_checks.cancel()
            # Stop taking requests first; live calls are drained when the services close.
            await runner.shutdown()
            await runner.cleanup()
    except StartupError as error:
        raise UserError(str(error)) from None


async def _startup_checks(settings: Settings) -> None:
    """Each carrier trunk checked once at start (a refused password or an untrusted certificate
    is one clear line in the log; Asterisk retries its registration itself), and every
    campaign's caller ID against the vouched numbers."""
    log = structlog.get_logger("dialer.deploy")
    await log_trunk_checks(settings.trunks, settings.tls_ca_file, log)
    await log_caller_id_problems(settings, log)


def _serve_command(args: argparse.Namespace) -> int:
    settings = from_environment()
    require_usable(settings)
    asyncio.run(_serve(settings, args.drain_seconds))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the HTTP API (stops cleanly on SIGTERM/SIGINT)")
    serve.add_argument(
        "--drain-seconds", type=float, default=10.0, help="how long to wait for the outbox at shutdown"
    )
    serve.set_defaults(handler=_serve_command)

