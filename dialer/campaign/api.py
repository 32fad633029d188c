"""HTTP endpoints of the campaign runtime: agent sessions, campaigns, and web leads
(`POST /v1/leads`, with speed-to-lead). Added to the API app by `dialer.app.build_app`."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from crm_bridge.admin import Admin, Entity
from crm_bridge.dispositions import PipelineStage
from crm_bridge.kinds import RecordKind
from crm_bridge.records import InvalidRecord
from crm_bridge.store import Campaign, Lead, TokenRole
from dialer.api.http import DEPS, TOKEN, ApiDependencies, ApiError, own_agent, service
from dialer.api.idempotency import KeyedLocks
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.campaign.control import change_record
from dialer.campaign.dialing import CampaignStatus, campaign_lead_record
from dialer.campaign.intake import IntakeError, Merge, WebLead, merge, parse_web_lead
from dialer.campaign.openapi import (
    AgentCampaign,
    AgentCampaigns,
    AgentStateBody,
    CampaignStatusBody,
    LeadAccepted,
    LoginRequest,
    PauseRequest,
    WebLeadRequest,
)
from dialer.campaign.runtime import CampaignRuntime
from dialer.runtime.agents import refuse_unknown_agent

__all__ = ["CAMPAIGNS", "KeyedLocks", "add_campaign_routes", "agent_routes", "campaign_routes", "lead_routes"]

STAFF = (TokenRole.SUPERVISOR, TokenRole.ADMIN)
# Speed-to-lead leads go ahead of every other lead of the campaign in the CRM hopper too.
SPEED_TO_LEAD_PRIORITY = 1000
AGENT_ID = {"agent_id": "the agent's id"}
CAMPAIGN_ID = {"campaign_id": "the campaign's id"}
STATE_URL = {"Location": "the agent's state (`GET /v1/agents/{agent_id}/state`)"}
CAMPAIGN_URL = {"Location": "the campaign's figures (`GET /v1/campaigns/{campaign_id}`)"}
# A known campaign this controller is not dialing (an unknown one is 404 `campaign_not_found`).
NOT_DIALING = "`campaign_not_running`: the campaign exists but is not running on this controller"
NOT_RUNNING = "the controller is not running campaigns (`controller_unavailable`), or a dependency is down"
# Every session endpoint says the same of an agent without a session (docs/api.md).
NO_SESSION = "`not_logged_in` (the agent has no session), or `agent_not_found`"
STATE_REFUSED = "`invalid_agent_state`: the agent's state does not allow it"

# Two posts of the same person at the same instant would otherwise both miss the other in
# PostgreSQL and both create a lead: they are serialised per phone and e-mail.
LEAD_IDENTITY_LOCKS: web.AppKey[KeyedLocks] = web.AppKey("lead_identity_locks", KeyedLocks)
CAMPAIGNS: web.AppKey[CampaignRuntime | None] = web.AppKey("campaigns", CampaignRuntime)

agent_routes = RouteTable("agents")
campaign_routes = RouteTable("campaigns")
lead_routes = RouteTable("leads")


def _runtime(request: web.Request) -> CampaignRuntime:
    return service(request, CAMPAIGNS, "campaign runtime")


async def _audit(request: web.Request, campaign_id: str, action: str) -> None:
    """Start and stop are kept in the campaign's control audit (`campaign_changes`)."""
    token = request[TOKEN]
    running = action == "start"
    await request.app[DEPS].records.put(RecordKind.CAMPAIGN_CHANGE, change_record(
        campaign_id, action, token.token_id, token.role.value, request.app[DEPS].clock(),
        {"running": not running}, {"running": running}))


def _state(request: web.Request, body: AgentStateBody, status: int = 200) -> Reply:
    location = f"/v1/agents/{body.agent_id}/state" if status in (201, 202) else None
    return Reply(body, status=status, location=location)


@agent_routes.post("/v1/agents/{agent_id}/login", "agentLogIn",
                   "Log an agent in to campaigns: its phone is called once and stays connected",
                   roles=(TokenRole.AGENT, *STAFF), parameters=AGENT_ID, body=LoginRequest,
                   responses={202: Answer(AgentStateBody, "the agent's state (logging_in)", headers=STATE_URL)},
                   errors={404: "`agent_not_found`",
                           409: "`already_logged_in`, `agent_inactive`, or the agent's phone cannot be called: "
                                "`sip_endpoint_unknown` (Asterisk has no such endpoint; `field`: sip_endpoint) or "
                                "`softphone_not_registered` (no phone is registered on it now)",
                           422: "`unknown_campaign`",
                           502: "`agent_leg_failed`: Asterisk refused the agent's leg for a reason it does not give",
                           503: NOT_RUNNING})
async def agent_login(request: web.Request, body: LoginRequest) -> Reply:
    agent_id = own_agent(request, request.match_info["agent_id"])
    snapshot = await _runtime(request).login(agent_id, list(body.campaign_ids))
    return _state(request, AgentStateBody.of(snapshot), 202)


@agent_routes.post("/v1/agents/{agent_id}/logout", "agentLogOut", "Log the agent out (after the current call, if on one)",
                   roles=(TokenRole.AGENT, *STAFF), parameters=AGENT_ID,
                   responses={202: Answer(AgentStateBody, "the agent's state", headers=STATE_URL)},
                   errors={404: NO_SESSION, 409: STATE_REFUSED, 503: NOT_RUNNING})
async def agent_logout(request: web.Request) -> Reply:
    snapshot = await _runtime(request).logout(own_agent(request, request.match_info["agent_id"]))
    return _state(request, AgentStateBody.of(snapshot), 202)


@agent_routes.post("/v1/agents/{agent_id}/pause", "agentPause", "Pause (now, or when the current call and wrap-up end)",
                   roles=(TokenRole.AGENT, *STAFF), parameters=AGENT_ID, body=PauseRequest,
                   responses={200: Answer(AgentStateBody, "the agent's state")},
                   errors={404: NO_SESSION, 409: STATE_REFUSED, 503: NOT_RUNNING})
async def agent_pause(request: web.Request, body: PauseRequest) -> Reply:
    agent_id = own_agent(request, request.match_info["agent_id"])
    snapshot = await _runtime(request).pause(agent_id, body.reason.strip())
    return _state(request, AgentStateBody.of(snapshot))


@agent_routes.post("/v1/agents/{agent_id}/ready", "agentReady", "Take calls again (from paused, or ending wrap-up early)",
                   roles=(TokenRole.AGENT, *STAFF), parameters=AGENT_ID,
                   responses={200: Answer(AgentStateBody, "the agent's state")},
                   errors={404: NO_SESSION, 409: STATE_REFUSED, 503: NOT_RUNNING})
async def agent_ready(request: web.Request) -> Reply:
    snapshot = await _runtime(request).ready(own_agent(request, request.match_info["agent_id"]))
    return _state(request, AgentStateBody.of(snapshot))


@agent_routes.get("/v1/agents/{agent_id}/state", "getAgentState", "The agent's session state",
                  roles=(TokenRole.AGENT, *STAFF), parameters=AGENT_ID,
                  responses={200: Answer(AgentStateBody, "the agent's state")},
                  errors={404: NO_SESSION, 503: NOT_RUNNING})
async def agent_state(request: web.Request) -> Reply:
    runtime = _runtime(request)
    agent_id = own_agent(request, request.match_info["agent_id"])
    snapshot = runtime.agent_state(agent_id)
    if snapshot is None:
        await runtime.refuse_not_logged_in(agent_id)
    return _state(request, AgentStateBody.of(snapshot))


@agent_routes.get("/v1/agents/{agent_id}/campaigns", "listAgentCampaigns",
                  "The campaigns an agent may log in to (the active ones): id, name, dial mode and whether each is "
                  "dialing on this controller", roles=(TokenRole.AGENT, *STAFF), parameters=AGENT_ID,
                  responses={200: Answer(AgentCampaigns, "the campaigns, by id")},
                  errors={404: "`agent_not_found`", 503: NOT_RUNNING})
async def agent_campaigns(request: web.Request) -> Reply:
    """For the agent's console: what `campaign_ids` a login may name, without the settings and
    figures an agent token may not read (`GET /v1/campaigns` is for staff and the CRM)."""
    runtime = _runtime(request)
    agent_id = own_agent(request, request.match_info["agent_id"])
    store = request.app[DEPS].store
    await refuse_unknown_agent(store, agent_id)
    rows = await Admin(store).list_all(Entity.CAMPAIGN, include_inactive=False)
    return Reply(AgentCampaigns(campaigns=[
        AgentCampaign(campaign_id=row["campaign_id"], name=row["name"], dial_mode=row["dial_mode"],
                      status=_dialing(runtime.campaign_status(row["campaign_id"])))
        for row in rows], next=None))


def _dialing(status: CampaignStatus | None) -> Literal["running", "paused", "stopped"]:
    if status is None or not status.running:
        return "stopped"
    return "paused" if status.paused else "running"


@campaign_routes.post("/v1/campaigns/{campaign_id}/start", "startCampaign",
                      "Start dialing the campaign (its dial mode's pacer, its hopper, the gate before each dial)",
                      roles=(TokenRole.CRM, *STAFF), parameters=CAMPAIGN_ID,
                      responses={202: Answer(CampaignStatusBody, "the campaign's figures", headers=CAMPAIGN_URL)},
                      errors={404: "`campaign_not_found`",
                              409: "`campaign_inactive` (the campaign is not active) or `manual_campaign` (nothing "
                                   "to pace)",
                              422: "the campaign's caller ID may not be sent (16 CFR 310.4(a)(8)): "
                                   "`caller_id_missing`, `caller_id_withheld`, `caller_id_invalid`, "
                                   "`caller_id_not_vouched` or `caller_id_vouching_incomplete` (`field`: caller_id)",
                              503: NOT_RUNNING})
async def campaign_start(request: web.Request) -> Reply:
    status = await _runtime(request).start_campaign(request.match_info["campaign_id"])
    await _audit(request, status.campaign_id, "start")
    return Reply(CampaignStatusBody.of(status), status=202, location=f"/v1/campaigns/{status.campaign_id}")


@campaign_routes.post("/v1/campaigns/{campaign_id}/stop", "stopCampaign",
                      "Stop dialing; calls with a person on them finish", roles=(TokenRole.CRM, *STAFF),
                      parameters=CAMPAIGN_ID, responses={200: Answer(CampaignStatusBody, "the campaign's figures")},
                      errors={404: "`campaign_not_found`", 409: NOT_DIALING, 503: NOT_RUNNING})
async def campaign_stop(request: web.Request) -> Reply:
    status = await _runtime(request).stop_campaign(request.match_info["campaign_id"])
    await _audit(request, status.campaign_id, "stop")
    return Reply(CampaignStatusBody.of(status))


@campaign_routes.get("/v1/campaigns/{campaign_id}", "getCampaign",
                     "A running campaign's figures: lines, hopper, agents, outcomes, gate blocks, abandon rate",
                     roles=(TokenRole.CRM, *STAFF), parameters=CAMPAIGN_ID,
                     responses={200: Answer(CampaignStatusBody, "the campaign's figures")},
                     errors={404: "`campaign_not_found`", 409: NOT_DIALING, 503: NOT_RUNNING})
async def campaign_status(request: web.Request) -> Reply:
    status = await _runtime(request).campaign_report(request.match_info["campaign_id"])
    return Reply(CampaignStatusBody.of(status))


@lead_routes.post("/v1/leads", "postLead",
                  "Create or merge a web lead (by phone or e-mail; enrichment, conflicts flagged for review); with "
                  "speed-to-lead on, it is dialed first", roles=(TokenRole.CRM, *STAFF), body=WebLeadRequest,
                  idempotent=True,
                  responses={201: Answer(LeadAccepted, "a new lead", headers={"Location": "the lead"}),
                             200: Answer(LeadAccepted, "merged into an existing lead")},
                  errors={422: "a field is invalid (`field`), e.g. control characters in a name, or "
                               "`unknown_campaign`"})
async def post_lead(request: web.Request, body: WebLeadRequest) -> Reply:
    """A 201 or 200 means the lead will reach the CRM: it passed the outbox's own record
    validation and is stored durably before the answer."""
    deps = request.app[DEPS]
    received = datetime.now(UTC)
    try:
        lead = parse_web_lead(body.model_dump(exclude_none=True))
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
    accepted = LeadAccepted(
        lead_id=lead_id, merged=existing is not None, conflicts=list(merged.conflicts),
        needs_review=bool(merged.conflicts) or bool(existing and existing.needs_review), speed_to_lead=queued,
        received_at=received,
    )
    if existing is not None:
        return Reply(accepted)
    return Reply(accepted, status=201, location=f"/v1/leads/{lead_id}")


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
        await deps.records.put_many(items)  # validates each record as the outbox will deliver it
    except InvalidRecord as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    flush = getattr(deps.records, "flush", None)
    if flush is not None and not deps.store.outage.down:
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
    """The runtime the routes use and the intake's locks (the routes are in the tables above)."""
    app[CAMPAIGNS] = runtime
    app[LEAD_IDENTITY_LOCKS] = KeyedLocks()
