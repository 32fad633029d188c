"""`dialer agent create|list|show|update|disable|enable`, `dialer campaign create|list|show|update|lists|
assign-list|unassign-list`, `dialer lists create|list|show|update|add-leads`, `dialer token
create|revoke|list` and `dialer changes ENTITY ID`: administration straight against the CRM
database (no running dialer needed), validated by the admin API's own models and audited as the
command line's user (`cli:NAME`).

They print only what was asked: the new id (a token's secret, once), the entity as JSON, or one
line per entity; a refusal is one sentence on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from crm_bridge import webhooks as webhook_queue
from crm_bridge.admin import Actor, Admin, AdminError, Entity, NotFound
from crm_bridge.migrate import MigrationError, ensure_schema
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import CrmStore, TokenRole
from dialer.api.admin import (
    AgentCreate,
    AgentUpdate,
    CampaignCreate,
    CampaignFields,
    ListCreate,
    ListLeads,
    ListUpdate,
    campaign_body,
    campaign_values,
    check_window,
    endpoint_warnings,
)
from dialer.api.http import ApiError
from dialer.api.routes import parse_body
from dialer.api.webhooks import (
    DeliveryQuery,
    ReplayRequest,
    RotateRequest,
    SubscriptionCreate,
    SubscriptionUpdate,
)
from dialer.ari.client import AriClient, AriConfig
from dialer.cli import UserError
from dialer.settings import from_environment

Step = Callable[[Admin, Actor], Awaitable[int]]


def actor() -> Actor:
    return Actor(f"cli:{getpass.getuser()}", "admin", "cli")


def _run(step: Step) -> int:
    settings = from_environment()

    async def run() -> int:
        await ensure_schema(settings.pg_dsn)
        store = await CrmStore.open(settings.pg_dsn, max_size=2)
        try:
            return await step(Admin(store), actor())
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (DatabaseUnavailable, MigrationError) as error:
        raise UserError(f"{error}.".replace("..", "."), exit_code=3) from None
    except AdminError as error:
        raise UserError(_sentence(str(error)), exit_code=1) from None
    except ApiError as error:
        raise UserError(_sentence(str(error)), exit_code=2) from None


def _sentence(text: str) -> str:
    return text.strip().rstrip(".") + "."


def validated(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """`values` as the API would take them (the same checks, the same sentences)."""
    return parse_body(json.dumps(values).encode(), model)


def _print_json(row: dict[str, Any]) -> None:
    print(json.dumps(row, indent=2, sort_keys=True, default=str))


def _given(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    """The options given on the command line (attribute -> field)."""
    return {field: getattr(args, attribute) for attribute, field in names.items()
            if getattr(args, attribute, None) is not None}


# ---- agents ----------------------------------------------------------------------------------
_AGENT_OPTIONS = {"name": "name", "endpoint": "sip_endpoint", "role": "role"}


def _agent(args: argparse.Namespace) -> int:
    command = args.agent_command

    async def step(admin: Admin, who: Actor) -> int:
        if command == "create":
            values = {"agent_id": args.agent_id, **_given(args, _AGENT_OPTIONS)}
            body = validated(AgentCreate, values)
            # Without --endpoint the agent is called on PJSIP/<agent_id>: checked alike, as the API
            # does; not for an agent that exists already (its refusal is the one sentence to say).
            if not await _agent_exists(admin, body.agent_id):
                _warn(await _endpoint_warnings(body.sip_endpoint, body.agent_id))
            row = await admin.create(Entity.AGENT, body.model_dump(mode="json"), who)
            print(row["agent_id"])
        elif command == "list":
            for row in await admin.list_all(Entity.AGENT, include_inactive=args.all):
                state = "active" if row["active"] else "disabled"
                print(f"{row['agent_id']}\t{row['name']}\t{row['sip_endpoint'] or '-'}\t{row['role']}\t{state}")
        elif command == "show":
            _print_json(await admin.get(Entity.AGENT, args.agent_id))
        elif command == "update":
            values = _given(args, _AGENT_OPTIONS)
            if args.active is not None:
                values["active"] = args.active
            if not values:
                raise UserError("Nothing to change: give --name, --endpoint, --role, --enable or --disable.")
            body = validated(AgentUpdate, values)
            _warn(await _endpoint_warnings(body.sip_endpoint))
            _print_json(await admin.update(Entity.AGENT, args.agent_id, body.model_dump(mode="json",
                                                                                    exclude_unset=True), who))
        else:  # disable, enable: idempotent (the second time changes and audits nothing)
            active = command == "enable"
            before = await admin.get(Entity.AGENT, args.agent_id)
            await admin.update(Entity.AGENT, args.agent_id, {"active": active}, who, action=command)
            done = "enabled" if active else "disabled"
            print(f"{done} {args.agent_id}" if before["active"] != active else f"{args.agent_id} was {done} already")
        return 0

    return _run(step)


async def _agent_exists(admin: Admin, agent_id: str) -> bool:
    try:
        await admin.get(Entity.AGENT, agent_id)
    except NotFound:
        return False
    return True


async def _endpoint_warnings(sip_endpoint: str | None, agent_id: str | None = None) -> list[str]:
    """The admin API's check of an agent's SIP endpoint, against the Asterisk the settings name (a
    cluster's first node: every node has the same endpoints); one short try, as an admin waits.
    With `agent_id`, no endpoint means the default `PJSIP/<agent_id>`, checked alike."""
    if sip_endpoint is None and agent_id is None:
        return []
    settings = from_environment()
    node = settings.nodes[0] if settings.nodes else None
    config = AriConfig(url=node.ari_url if node else settings.ari_url, user=node.ari_user if node else settings.ari_user,
                       password=node.ari_password if node else settings.ari_password, app=settings.ari_app,
                       request_timeout=2.0, retries=0)
    async with AriClient(config) as ari:
        return await endpoint_warnings(ari, sip_endpoint, agent_id)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"dialer: warning: {_sentence(warning)}", file=sys.stderr)


def add_agent_commands(agents: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The admin actions of `dialer agent` (next to login, pause, ... of a running dialer)."""
    create = agents.add_parser("create", help="create an agent (in the CRM database)")
    create.add_argument("agent_id")
    create.add_argument("--name", required=True)
    create.add_argument("--endpoint", help="the SIP endpoint the agent is called on (e.g. agent1001)")
    create.add_argument("--role", choices=["agent", "supervisor", "admin"])
    listing = agents.add_parser("list", help="list the active agents (--all: the disabled too)")
    listing.add_argument("--all", action="store_true")
    show = agents.add_parser("show", help="one agent, as JSON")
    show.add_argument("agent_id")
    update = agents.add_parser("update", help="change an agent")
    update.add_argument("agent_id")
    update.add_argument("--name")
    update.add_argument("--endpoint")
    update.add_argument("--role", choices=["agent", "supervisor", "admin"])
    update.add_argument("--enable", dest="active", action="store_const", const=True)
    update.add_argument("--disable", dest="active", action="store_const", const=False)
    disable = agents.add_parser("disable", help="disable an agent (no new calls; history kept)")
    disable.add_argument("agent_id")
    enable = agents.add_parser("enable", help="enable a disabled agent again")
    enable.add_argument("agent_id")
    for parser in (create, listing, show, update, disable, enable):
        parser.set_defaults(handler=_agent)


# ---- campaigns -------------------------------------------------------------------------------
_CAMPAIGN_OPTIONS = {"name": "name", "dial_mode": "dial_mode", "caller_id": "caller_id",
                     "seller_name": "seller_name", "dnc_callback_number": "dnc_callback_number",
                     "max_abandon_rate": "max_abandon_rate", "line_of_business": "line_of_business",
                     "amd_enabled": "amd_enabled", "speed_to_lead": "speed_to_lead", "active": "active",
                     "purpose": "purpose"}


def _campaign_fields(args: argparse.Namespace) -> dict[str, Any]:
    values = _given(args, _CAMPAIGN_OPTIONS)
    if args.window is not None:
        start, separator, end = args.window.partition("-")
        if not separator:
            raise UserError("--window takes START-END in local time, e.g. 09:00-20:00.")
        values["window_start"], values["window_end"] = start.strip(), end.strip()
    if args.dispositions is not None:
        values["dispositions"] = [code.strip() for code in args.dispositions.split(",") if code.strip()]
    if args.amd_settings:
        settings: dict[str, Any] = {}
        for item in args.amd_settings:
            name, separator, raw = item.partition("=")
            if not separator:
                raise UserError(f"--amd-setting takes NAME=VALUE, not {item!r}.")
            try:
                settings[name.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                settings[name.strip()] = raw
        values["amd_settings"] = settings
    if args.safe_harbor_prompt is not None:
        values["prompts"] = {"safe_harbor": args.safe_harbor_prompt}
    return values


def _check_caller_id(fields: CampaignFields) -> None:
    if fields.caller_id is not None:
        problem = from_environment().caller_id_problem(fields.caller_id)
        if problem:
            raise UserError(problem)


def _campaign(args: argparse.Namespace) -> int:
    command = args.campaign_command

    async def step(admin: Admin, who: Actor) -> int:
        if command == "create":
            body = validated(CampaignCreate, {"campaign_id": args.campaign_id, **_campaign_fields(args)})
            _check_caller_id(body)
            check_window(body.window_start, body.window_end)
            row = await admin.create(Entity.CAMPAIGN, campaign_values(body, unset=False), who)
            print(row["campaign_id"])
        elif command == "list":
            for row in await admin.list_all(Entity.CAMPAIGN, include_inactive=args.all):
                state = "active" if row["active"] else "inactive"
                print(f"{row['campaign_id']}\t{row['name']}\t{row['dial_mode']}\t{row['caller_id'] or '-'}\t{state}")
        elif command == "show":
            _print_json(campaign_body(await admin.get(Entity.CAMPAIGN, args.campaign_id)).model_dump(mode="json"))
        elif command == "update":
            values = _campaign_fields(args)
            if not values:
                raise UserError("Nothing to change: give at least one option (see 'dialer campaign update -h').")
            body = validated(CampaignFields, values)
            _check_caller_id(body)
            if "window_start" in values or "window_end" in values:
                current = await admin.get(Entity.CAMPAIGN, args.campaign_id)
                check_window(body.window_start if "window_start" in values else current["window_start"],
                             body.window_end if "window_end" in values else current["window_end"])
            row = await admin.update(Entity.CAMPAIGN, args.campaign_id, campaign_values(body, unset=True), who)
            _print_json(campaign_body(row).model_dump(mode="json"))
        elif command == "lists":
            await admin.get(Entity.CAMPAIGN, args.campaign_id)
            for found in await admin.lists_of_campaign(args.campaign_id):
                print(f"{found['list_id']}\t{found['leads']} leads")
        elif command == "assign-list":
            result = await admin.assign_list(args.campaign_id, args.list_id, who)
            print(f"{result['campaign_memberships_added']} leads added")
        else:  # unassign-list
            result = await admin.unassign_list(args.campaign_id, args.list_id, who)
            print(f"{result['memberships_retired']} leads retired")
        return 0

    return _run(step)


def _campaign_options(parser: argparse.ArgumentParser, *, create: bool) -> None:
    parser.add_argument("campaign_id")
    parser.add_argument("--name", required=create)
    parser.add_argument("--dial-mode", choices=["preview", "progressive", "power", "predictive"])
    parser.add_argument("--caller-id", help="E.164, e.g. +12125550100")
    parser.add_argument("--window", help="local calling window START-END within 08:00-21:00, e.g. 09:00-20:00")
    parser.add_argument("--dispositions", help="comma-separated codes agents may pick (must hold do_not_call)")
    parser.add_argument("--amd", dest="amd_enabled", action="store_const", const=True)
    parser.add_argument("--no-amd", dest="amd_enabled", action="store_const", const=False)
    parser.add_argument("--amd-setting", dest="amd_settings", action="append", metavar="NAME=VALUE",
                        help="machine_action=message, greeting_ms=1500, lines_per_agent=2 ... (repeat)")
    parser.add_argument("--seller-name", help="named in the safe-harbor message")
    parser.add_argument("--dnc-callback-number", help="E.164 number the safe-harbor message gives")
    parser.add_argument("--max-abandon-rate", type=float, help="at most 0.03")
    parser.add_argument("--safe-harbor-prompt", help="an Asterisk sound played instead of the generated message")
    parser.add_argument("--speed-to-lead", dest="speed_to_lead", action="store_const", const=True)
    parser.add_argument("--no-speed-to-lead", dest="speed_to_lead", action="store_const", const=False)
    parser.add_argument("--line-of-business")
    parser.add_argument("--purpose", choices=["telemarketing", "servicing", "informational"])
    parser.add_argument("--active", dest="active", action="store_const", const=True)
    parser.add_argument("--inactive", dest="active", action="store_const", const=False)
    parser.set_defaults(handler=_campaign)


def add_campaign_commands(campaigns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The admin actions of `dialer campaign` (next to start, stop, status of a running dialer)."""
    _campaign_options(campaigns.add_parser("create", help="create a campaign (in the CRM database)"), create=True)
    _campaign_options(campaigns.add_parser("update", help="change a campaign's settings"), create=False)
    listing = campaigns.add_parser("list", help="list the active campaigns (--all: the inactive too)")
    listing.add_argument("--all", action="store_true")
    show = campaigns.add_parser("show", help="a campaign's settings, as JSON")
    show.add_argument("campaign_id")
    lists = campaigns.add_parser("lists", help="the lead lists assigned to a campaign")
    lists.add_argument("campaign_id")
    assign = campaigns.add_parser("assign-list", help="assign a lead list to a campaign")
    unassign = campaigns.add_parser("unassign-list", help="take a lead list off a campaign")
    for parser in (assign, unassign):
        parser.add_argument("campaign_id")
        parser.add_argument("list_id")
    for parser in (listing, show, lists, assign, unassign):
        parser.set_defaults(handler=_campaign)


# ---- lists -----------------------------------------------------------------------------------
def _lists(args: argparse.Namespace) -> int:
    command = args.list_command

    async def step(admin: Admin, who: Actor) -> int:
        if command == "create":
            body = validated(ListCreate, {"list_id": args.list_id, **_given(args, {"name": "name",
                                                                                   "description": "description"})})
            print((await admin.create(Entity.LIST, body.model_dump(), who))["list_id"])
        elif command == "list":
            for row in await admin.list_all(Entity.LIST, include_inactive=args.all):
                print(f"{row['list_id']}\t{row['name']}\t{'active' if row['active'] else 'inactive'}")
        elif command == "show":
            row = await admin.get(Entity.LIST, args.list_id)
            _print_json({**row, "campaigns": await admin.list_campaigns_of(args.list_id)})
        elif command == "update":
            values = _given(args, {"name": "name", "description": "description", "active": "active"})
            if not values:
                raise UserError("Nothing to change: give --name, --description, --active or --inactive.")
            body = validated(ListUpdate, values)
            _print_json(await admin.update(Entity.LIST, args.list_id, body.model_dump(exclude_unset=True), who))
        else:  # add-leads
            body = validated(ListLeads, {"lead_ids": args.lead_ids})
            result = await admin.add_to_list(args.list_id, body.lead_ids, who)
            print(f"{result['leads']} leads on {args.list_id}; {result['campaign_memberships_added']} campaign "
                  "memberships added")
        return 0

    return _run(step)


# ---- tokens ----------------------------------------------------------------------------------
def _token(args: argparse.Namespace) -> int:
    command = args.token_command

    async def step(admin: Admin, who: Actor) -> int:
        if command == "create":
            role = TokenRole(args.role)
            if role is TokenRole.AGENT and not args.agent:
                raise UserError("An agent token needs --agent AGENT_ID (the agent it speaks for).")
            row, secret = await admin.issue_token(role.value, who, agent_id=args.agent, label=args.label)
            print(json.dumps({"token_id": row["token_id"], "role": role.value, "token": secret}))
        elif command == "revoke":
            try:
                await admin.revoke_token(args.token_id, who)
            except AdminError:
                raise UserError(f"No live token {args.token_id}: see 'dialer token list'.", exit_code=1) from None
            print(f"revoked {args.token_id}")
        else:
            for token in await admin.list_all(Entity.TOKEN):
                state = "revoked" if token["revoked_at"] else "live"
                print(f"{token['token_id']}  {token['role']:<10} {token['agent_id'] or '-':<12} {state}  "
                      f"{token['label'] or ''}")
        return 0

    return _run(step)


# ---- webhooks --------------------------------------------------------------------------------
def _webhook(args: argparse.Namespace) -> int:
    command = args.webhook_command

    async def step(admin: Admin, who: Actor) -> int:
        if command == "create":
            body = validated(SubscriptionCreate, {"url": args.url, "event_types": args.events or [],
                                                  **_given(args, {"description": "description"})})
            secret = webhook_queue.new_secret()
            row = await admin.create(Entity.WEBHOOK, {
                "subscription_id": f"whk-{uuid.uuid4().hex[:16]}", "url": body.url,
                "event_types": sorted(set(body.event_types)), "description": body.description, "secret": secret}, who)
            print(json.dumps({"subscription_id": row["subscription_id"], "secret": secret}))
        elif command == "list":
            for row in await admin.list_all(Entity.WEBHOOK):
                state = "active" if row["active"] else "disabled"
                print(f"{row['subscription_id']}\t{row['url']}\t{','.join(row['event_types'])}\t{state}")
        elif command == "show":
            _print_json(await admin.get(Entity.WEBHOOK, args.subscription_id))
        elif command in ("update", "enable", "disable"):
            values = {"active": command == "enable"} if command != "update" else _given(args, {"url": "url"})
            if command == "update" and args.events:
                values["event_types"] = args.events
            if not values:
                raise UserError("Nothing to change: give --url or --event.")
            body = validated(SubscriptionUpdate, values)
            values = body.model_dump(exclude_unset=True)
            if "event_types" in values:
                values["event_types"] = sorted(set(values["event_types"]))
            _print_json(await admin.update(Entity.WEBHOOK, args.subscription_id, values, who))
        elif command == "delete":
            await admin.delete(Entity.WEBHOOK, args.subscription_id, who)
            print(f"deleted {args.subscription_id}")
        elif command == "rotate-secret":
            # The API's checks (0 s to a week), so --keep-previous -1 is refused here as there.
            keep = validated(RotateRequest, {"keep_previous_seconds": args.keep_previous}).keep_previous_seconds
            current = await admin.get(Entity.WEBHOOK, args.subscription_id)
            async with admin.connection() as conn:
                old = await conn.fetchval("SELECT secret FROM webhook_subscriptions WHERE subscription_id = $1",
                                          current["subscription_id"])
                now = await conn.fetchval("SELECT now()")
            secret = webhook_queue.new_secret()
            await admin.update(Entity.WEBHOOK, args.subscription_id, {
                "secret": secret, "previous_secret": old,
                "previous_expires_at": now + timedelta(seconds=keep)}, who, action="rotate_secret")
            print(json.dumps({"subscription_id": args.subscription_id, "secret": secret}))
        elif command == "deliveries":
            validated(DeliveryQuery, {"limit": args.limit})  # 1-1000, as the API takes
            await admin.get(Entity.WEBHOOK, args.subscription_id)
            async with admin.connection() as conn:
                rows = await webhook_queue.deliveries(conn, args.subscription_id, status=args.status, limit=args.limit)
            for row in rows:
                print(f"{row['delivery_id']}\t{row['event_id']}\t{row['event_type']}\t{row['status']}\t"
                      f"{row['attempts']} attempts\t{row['last_status'] or row['last_error'] or ''}")
        else:  # replay
            if (args.event_id is None) == (args.since is None):
                raise UserError("Give --event-id, or --since (and --until).")
            body = validated(ReplayRequest, _given(args, {"event_id": "event_id", "since": "since", "until": "until"}))
            await admin.get(Entity.WEBHOOK, args.subscription_id)
            async with admin.connection() as conn:
                queued = await webhook_queue.replay(conn, args.subscription_id, event_id=body.event_id,
                                                    since=body.since, until=body.until)
            print(f"{queued} deliveries queued")
        return 0

    return _run(step)


def _webhook_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = subparsers.add_parser("webhook", help="webhook subscriptions: events pushed to the CRM (docs/webhooks.md)")
    commands = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="subscribe a URL; prints its id and secret once")
    create.add_argument("url")
    create.add_argument("--event", dest="events", action="append", required=True, help="an event type (repeat)")
    create.add_argument("--description")
    update = commands.add_parser("update", help="change a subscription's URL or events")
    update.add_argument("subscription_id")
    update.add_argument("--url")
    update.add_argument("--event", dest="events", action="append")
    rotate = commands.add_parser("rotate-secret", help="a new secret; the previous one also signs for a while")
    rotate.add_argument("subscription_id")
    rotate.add_argument("--keep-previous", type=int, default=86400, help="seconds the previous secret still signs")
    deliveries = commands.add_parser("deliveries", help="the delivery log, newest first")
    deliveries.add_argument("subscription_id")
    deliveries.add_argument("--status", choices=["pending", "delivered", "parked"])
    deliveries.add_argument("--limit", type=int, default=50)
    replay = commands.add_parser("replay", help="send an event, or a time range's events, again")
    replay.add_argument("subscription_id")
    replay.add_argument("--event-id")
    replay.add_argument("--since", help="ISO-8601 time, e.g. 2026-11-24T00:00Z")
    replay.add_argument("--until")
    parsers = [create, update, rotate, deliveries, replay, commands.add_parser("list", help="the subscriptions")]
    for name in ("show", "enable", "disable", "delete"):
        parser = commands.add_parser(name, help=f"{name} a subscription")
        parser.add_argument("subscription_id")
        parsers.append(parser)
    for parser in parsers:
        parser.set_defaults(handler=_webhook)


def _changes(args: argparse.Namespace) -> int:
    async def step(admin: Admin, who: Actor) -> int:
        changes = await admin.changes(Entity(args.entity), args.entity_id)
        if not changes:
            # Was: nothing at all and exit 0, the same as a typo in the id.
            listing = "lists" if args.entity == Entity.LIST else args.entity
            raise UserError(f"no recorded changes of {args.entity} {args.entity_id!r}: check the id "
                            f"('dialer {listing} list').", exit_code=1)
        for change in changes:
            print(json.dumps(change, sort_keys=True))
        return 0

    return _run(step)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lists = subparsers.add_parser("lists", help="lead lists (create, add leads; assign with 'dialer campaign')")
    commands = lists.add_subparsers(dest="list_command", metavar="ACTION", required=True)
    create = commands.add_parser("create", help="create a lead list")
    create.add_argument("list_id")
    create.add_argument("--name", required=True)
    create.add_argument("--description")
    listing = commands.add_parser("list", help="the active lists (--all: the inactive too)")
    listing.add_argument("--all", action="store_true")
    show = commands.add_parser("show", help="a list and its campaigns, as JSON")
    show.add_argument("list_id")
    update = commands.add_parser("update", help="change a list")
    update.add_argument("list_id")
    update.add_argument("--name")
    update.add_argument("--description")
    update.add_argument("--active", dest="active", action="store_const", const=True)
    update.add_argument("--inactive", dest="active", action="store_const", const=False)
    add = commands.add_parser("add-leads", help="put leads on a list (they join its campaigns)")
    add.add_argument("list_id")
    add.add_argument("lead_ids", nargs="+", metavar="LEAD_ID")
    for parser in (create, listing, show, update, add):
        parser.set_defaults(handler=_lists)

    token = subparsers.add_parser("token", help="API bearer tokens (stored hashed)")
    tokens = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    issue = tokens.add_parser("create", help="issue a token; prints it once")
    issue.add_argument("--role", required=True, choices=[role.value for role in TokenRole])
    issue.add_argument("--agent", help="the agent id an agent token speaks for")
    issue.add_argument("--label", help="what the token is for")
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")
    tokens_list = tokens.add_parser("list", help="list tokens (never their secrets)")
    for parser in (issue, revoke, tokens_list):
        parser.set_defaults(handler=_token)

    _webhook_commands(subparsers)
    changes = subparsers.add_parser("changes", help="the audit of an agent, campaign, list, token or webhook")
    changes.add_argument("entity", choices=[entity.value for entity in Entity])
    changes.add_argument("entity_id")
    changes.set_defaults(handler=_changes)
