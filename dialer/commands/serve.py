"""`dialer serve` (the HTTP API) and `dialer token create|revoke|list` (API tokens)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from aiohttp import web

from crm_bridge.migrate import MigrationError, ensure_schema
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import CrmStore, TokenRole
from dialer.cli import UserError
from dialer.commands.config import log_caller_id_problems, require_usable
from dialer.logs import AccessLog
from dialer.provision.sipcheck import log_trunk_checks
from dialer.serve import StartupError, dialer_services
from dialer.settings import Settings, from_environment


@asynccontextmanager
async def crm_store(settings: Settings) -> AsyncIterator[CrmStore]:
    try:
        await ensure_schema(settings.pg_dsn)
        store = await CrmStore.open(settings.pg_dsn)
    except (DatabaseUnavailable, MigrationError) as error:
        raise UserError(str(error)) from None
    try:
        yield store
    finally:
        await store.close()


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


async def _token(args: argparse.Namespace) -> int:
    async with crm_store(from_environment()) as store:
        if args.token_command == "create":
            role = TokenRole(args.role)
            if role is TokenRole.AGENT and not args.agent:
                raise UserError("An agent token needs --agent AGENT_ID (the agent it speaks for).")
            issued = await store.issue_token(role, agent_id=args.agent, label=args.label)
            print(json.dumps({"token_id": issued.token.token_id, "role": role.value, "token": issued.secret}))
            return 0
        if args.token_command == "revoke":
            if not await store.revoke_token(args.token_id):
                raise UserError(f"No live token {args.token_id}: see 'dialer token list'.")
            print(f"revoked {args.token_id}")
            return 0
        for token in await store.list_tokens():
            state = "revoked" if token.revoked_at else "live"
            print(f"{token.token_id}  {token.role.value:<10} {token.agent_id or '-':<12} {state}  {token.label or ''}")
        return 0


def _token_command(args: argparse.Namespace) -> int:
    return asyncio.run(_token(args))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the HTTP API (stops cleanly on SIGTERM/SIGINT)")
    serve.add_argument(
        "--drain-seconds", type=float, default=10.0, help="how long to wait for the outbox at shutdown"
    )
    serve.set_defaults(handler=_serve_command)

    token = subparsers.add_parser("token", help="API bearer tokens (stored hashed)")
    commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="issue a token; prints it once")
    create.add_argument("--role", required=True, choices=[role.value for role in TokenRole])
    create.add_argument("--agent", help="the agent id an agent token speaks for")
    create.add_argument("--label", help="what the token is for")
    create.set_defaults(handler=_token_command)
    revoke = commands.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")
    revoke.set_defaults(handler=_token_command)
    commands.add_parser("list", help="list tokens (never their secrets)").set_defaults(handler=_token_command)
