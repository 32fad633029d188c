"""`dialer agent login|logout|pause|ready|state` and `dialer campaign start|stop|status`: a thin
client of a running `dialer serve` (the sessions live in that process), authenticated with a
bearer token (`--token` or `DIALER_API_TOKEN`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any
from urllib.parse import quote

import aiohttp

from dialer.cli import UserError
from dialer.commands.admin import add_agent_commands, add_campaign_commands
from dialer.settings import from_environment


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    settings = from_environment()
    return f"http://{settings.http_host}:{settings.http_port}"


async def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None) -> Any:
    token = args.token or os.environ.get("DIALER_API_TOKEN")
    if not token:
        raise UserError("No API token: pass --token or set DIALER_API_TOKEN ('dialer token create' makes one).")
    url = _base_url(args) + path
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            async with session.request(method, url, json=body, timeout=aiohttp.ClientTimeout(total=15)) as response:
                try:
                    payload = await response.json(content_type=None)
                except ValueError:  # was a JSONDecodeError traceback (a proxy's page, another server)
                    raise UserError(f"{_base_url(args)} answered {method} {path} with {response.status} and no JSON: "
                                    "is it the dialer API (--url, DIALER_HTTP_HOST, DIALER_HTTP_PORT)?",
                                    exit_code=1) from None
                if response.status >= 400:
                    message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
                    raise UserError(f"{method} {path} was refused ({response.status}): {message}", exit_code=1)
                return payload
    except (aiohttp.ClientError, TimeoutError) as error:
        raise UserError(f"The dialer API at {_base_url(args)} does not answer ({error}): is 'dialer serve' running?") from None


def _run(args: argparse.Namespace) -> int:
    path, method, body = args.request(args)
    print(json.dumps(asyncio.run(_call(args, method, path, body)), indent=2, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--token", help="API bearer token (default: $DIALER_API_TOKEN)")
        parser.add_argument("--url", help="the dialer API (default: http://DIALER_HTTP_HOST:DIALER_HTTP_PORT)")
        parser.set_defaults(handler=_run)

    agent = subparsers.add_parser("agent", help="agents: create, list, update, disable, enable; sessions on a running dialer (login, pause, ...)")
    agents = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    add_agent_commands(agents)
    login = agents.add_parser("login", help="call the agent's phone and keep it connected for the campaigns")
    login.add_argument("agent_id")
    login.add_argument("--campaign", action="append", required=True, dest="campaigns", help="campaign id (repeat)")
    login.set_defaults(request=lambda a: (f"/v1/agents/{quote(a.agent_id, safe='')}/login", "POST", {"campaign_ids": a.campaigns}))
    common(login)
    pause = agents.add_parser("pause", help="stop offering calls to the agent")
    pause.add_argument("agent_id")
    pause.add_argument("--reason", default="break")
    pause.set_defaults(request=lambda a: (f"/v1/agents/{quote(a.agent_id, safe='')}/pause", "POST", {"reason": a.reason}))
    common(pause)
    for name, method, verb in (("logout", "POST", "logout"), ("ready", "POST", "ready"), ("state", "GET", "state")):
        parser = agents.add_parser(name, help=f"the agent's {name}")
        parser.add_argument("agent_id")
        parser.set_defaults(request=lambda a, m=method, v=verb: (f"/v1/agents/{quote(a.agent_id, safe='')}/{v}", m, None))
        common(parser)

    campaign = subparsers.add_parser("campaign", help="campaigns: create, list, update, lists; on a running dialer: start, stop, status")
    campaigns = campaign.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)
    add_campaign_commands(campaigns)
    for name, method, suffix in (("start", "POST", "/start"), ("stop", "POST", "/stop"), ("status", "GET", "")):
        parser = campaigns.add_parser(name, help=f"{name} a campaign")
        parser.add_argument("campaign_id")
        parser.set_defaults(request=lambda a, m=method, sfx=suffix: (f"/v1/campaigns/{quote(a.campaign_id, safe='')}{sfx}", m, None))
        common(parser)
