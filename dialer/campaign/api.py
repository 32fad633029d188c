"""HTTP endpoints of the campaign runtime: agent sessions, campaigns, and web leads
(`POST /v1/leads`, with speed-to-lead). Added to the API app by `dialer.app.build_app`."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from crm_bridge.dispositions import PipelineStage
from crm_bridge.kinds import RecordKind
from crm_bridge.records import InvalidRecord
from crm_bridge.store import Campaign, Lead, TokenRole
from dialer.api.http import DEPS, TOKEN, ApiDependencies, ApiError, allow, json_object, service
from dialer.campaign.dialing import campaign_lead_record
from dialer.campaign.intake import IntakeError, Merge, WebLead, merge, parse_web_lead
from dialer.campaign.runtime import CampaignRuntime

STAFF = (TokenRole.SUPERVISOR, TokenRole.ADMIN)
# Speed-to-lead leads go ahead of every other lead of the campaign in the CRM hopper too.
SPEED_TO_LEAD_PRIORITY = 1000


class KeyedLocks:
    """Serialises work per key (a lead's phone, its e-mail) without serialising unrelated keys.

    Two posts of the same person at the same instant would otherwise both miss the other in
    PostgreSQL and both create a lead. Keys are taken in sorted order so two requests sharing
    two keys cannot deadlock; a key's lock is dropped when nobody holds or waits for it.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def holding(self, keys: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                await self._locks[key].acquire()
                taken.append(self._locks[key])
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            for key in ordered:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


LEAD_IDENTITY_LOCKS: web.AppKey[KeyedLocks] = web.AppKey("lead_identity_locks", KeyedLocks)


CAMPAIGNS: web.AppKey[CampaignRuntime | None] = web.AppKey("campaigns", CampaignRuntime)


def _runtime(request: web.Request) -> CampaignRuntime:
    return service(request, CAMPAIGNS, "campaign runtime")


def _own_agent(request: web.Request) -> str:
    agent_id = request.match_info["agent_id"]
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and token.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent token may act only for its own agent", field="agent_id")
    return agent_id


@allow(TokenRole.AGENT, *STAFF)
async def agent_login(request: web.Request) -> web.Response:
    agent_id = _own_agent(request)
    body = await json_object(request, optional=True)
    campaign_ids = body.get("campaign_ids")
    if not isinstance(campaign_ids, list) or not campaign_ids or not all(isinstance(c, str) and c for c in campaign_ids):
        raise ApiError(422, "invalid_field", "campaign_ids must be a non-empty list of campaign ids",
                       field="campaign_ids")
    snapshot = await _runtime(request).login(agent_id, campaign_ids)
    return web.json_response(snapshot.to_json(), status=202)


@allow(TokenRole.AGENT, *STAFF)
async def agent_logout(request: web.Request) -> web.Response:
    snapshot = await _runtime(request).logout(_own_agent(request))
    return web.json_response(snapshot.to_json(), status=202)


@allow(TokenRole.AGENT, *STAFF)
async def agent_pause(request: web.Request) -> web.Response:
    agent_id = _own_agent(request)
    reason = (await json_object(request, optional=True)).get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 100:
        raise ApiError(422, "invalid_field", "reason is required (a short text, e.g. 'lunch')", field="reason")
    snapshot = await _runtime(request).pause(agent_id, reason.strip())
    return web.json_response(snapshot.to_json())


@allow(TokenRole.AGENT, *STAFF)
async def agent_ready(request: web.Request) -> web.Response:
    snapshot = await _runtime(request).ready(_own_agent(request))
    return web.json_response(snapshot.to_json())


@allow(TokenRole.AGENT, *STAFF)
async def agent_state(request: web.Request) -> web.Response:
    snapshot = _runtime(request).agent_state(_own_agent(request))
    if snapshot is None:
        raise ApiError(404, "not_logged_in", "the agent is not logged in")
    return web.json_response(snapshot.to_json())


@allow(TokenRole.CRM, *STAFF)
async def campaign_start(request: web.Request) -> web.Response:
    status = await _runtime(request).start_campaign(request.match_info["campaign_id"])
    return web.json_response(asdict(status), status=202)


@allow(TokenRole.CRM, *STAFF)
async def campaign_stop(request: web.Request) -> web.Response:
    status = await _runtime(request).stop_campaign(request.match_info["campaign_id"])
    return web.json_response(asdict(status))


@allow(TokenRole.CRM, *STAFF)
async def campaign_status(request: web.Request) -> web.Response:
    status = await _runtime(request).campaign_report(request.match_info["campaign_id"])
    if status is None:
        raise ApiError(404, "campaign_not_running", "the campaign is not running on this controller")
    return web.json_response(asdict(status))


@allow(TokenRole.CRM, *STAFF)
async def post_lead(request: web.Request) -> web.Response:
    """Create or merge a web lead; with speed-to-lead on, it goes to the head of the hopper."""
    deps = request.app[DEPS]
    received = time.time()
    try:
        lead = parse_web_lead(await json_object(request, optional=True))
    except IntakeError as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field) from None
    campaign = None
    if lead.campaign_id is not None:
        campaign = await deps.store.get_campaign(lead.campaign_id)
        if campaign is None:
            raise ApiError(422, "unknown_campaign", f"no campaign {lead.campaign_id!r}", field="campaign_id")
    identity = [f"phone:{lead.phone}", *([f"email:{lead.email}"] if lead.email is not None else [])]
    async with request.app[LEAD_IDENTITY_LOCKS].holding(identity):
        existing, lead_id, merged = await _merge_and_store(deps, lead, campaign)
    queued = False
    runtime = request.app.get(CAMPAIGNS)
    if campaign is not None and campaign.speed_to_lead and runtime is not None:
        # The outbox delivers the lead to PostgreSQL in the background; the hopper gets it now.
        queued = await runtime.speed_to_lead(campaign.campaign_id, _lead_now(lead_id, existing, merged.patch))
    return web.json_response(
        {"lead_id": lead_id, "merged": existing is not None, "conflicts": list(merged.conflicts),
         "needs_review": bool(merged.conflicts) or bool(existing and existing.needs_review),
         "speed_to_lead": queued, "received_at": received},
        status=200 if existing else 201,
    )


async def _merge_and_store(
    deps: ApiDependencies, lead: WebLead, campaign: Campaign | None
) -> tuple[Lead | None, str, Merge]:
    """Match the web lead to a known one, merge, and write it (delivered to PostgreSQL before
    returning when it can be, so the next post for the same person finds it)."""
    matches = await deps.store.find_leads_by_phone(lead.phone)
    if not matches and lead.email is not None:
        matches = await deps.store.find_leads_by_email(lead.email)
    existing = matches[0] if matches else None
    lead_id = existing.lead_id if existing else f"lead-{uuid.uuid4().hex}"
    merged = merge(lead, None if existing is None else asdict(existing), lead_id)
    items: list[tuple[str, dict[str, object]]] = [(RecordKind.LEAD_UPSERT, merged.patch)]
    if campaign is not None:
        fields: dict[str, object] = {"priority": SPEED_TO_LEAD_PRIORITY} if campaign.speed_to_lead else {}
        items.append((RecordKind.CAMPAIGN_LEAD, campaign_lead_record(campaign.campaign_id, lead_id, **fields)))
    try:
        await deps.records.put_many(items)
    except InvalidRecord as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    flush = getattr(deps.records, "flush", None)
    if flush is not None:
        # Deliver now, so the next web lead for the same person finds this one (duplicates are
        # matched in PostgreSQL; the caller holds the person's identity locks meanwhile).
        await flush(5.0)
    return existing, lead_id, merged


def _lead_now(lead_id: str, existing: Lead | None, patch: dict[str, object]) -> Lead:
    """The lead as it will be once the patch is applied (for the hopper's gate check)."""
    now = datetime.now(UTC)
    base: dict[str, Any] = asdict(existing) if existing else {
        "lead_id": lead_id, "first_name": None, "last_name": None, "phones": (), "email": None,
        "address_line1": None, "address_line2": None, "city": None, "state": None, "zip": None,
        "timezone_hint": None, "pipeline_stage": PipelineStage.NEW_LEAD, "source": None, "owner_agent_id": None,
        "callback_at": None, "needs_review": False, "review_reason": None, "created_at": now, "updated_at": now,
    }
    base.update({k: v for k, v in patch.items() if k in base})
    base["phones"] = tuple(base["phones"])
    consents = existing.consents if existing else ()
    base.pop("consents", None)
    return Lead(**base, consents=consents)


def add_campaign_routes(app: web.Application, runtime: CampaignRuntime | None) -> None:
    app[CAMPAIGNS] = runtime
    app.router.add_post("/v1/agents/{agent_id}/login", agent_login)
    app.router.add_post("/v1/agents/{agent_id}/logout", agent_logout)
    app.router.add_post("/v1/agents/{agent_id}/pause", agent_pause)
    app.router.add_post("/v1/agents/{agent_id}/ready", agent_ready)
    app.router.add_get("/v1/agents/{agent_id}/state", agent_state)
    app.router.add_post("/v1/campaigns/{campaign_id}/start", campaign_start)
    app.router.add_post("/v1/campaigns/{campaign_id}/stop", campaign_stop)
    app.router.add_get("/v1/campaigns/{campaign_id}", campaign_status)
    app[LEAD_IDENTITY_LOCKS] = KeyedLocks()
    app.router.add_post("/v1/leads", post_lead)
