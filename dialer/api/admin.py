"""The admin API: agents, campaigns (dial mode, caller ID, calling window, dispositions, AMD and
safe-harbor settings, prompts), lead lists and their campaigns, API tokens, and the audit of
every change (`GET /v1/admin-changes`). The `dialer agent|campaign|list|token` commands validate
with the same models and write through the same `crm_bridge.admin.Admin`.

Writes need an admin token; reads an admin, supervisor or CRM token. Every write is recorded in
`admin_changes` and chained in the audit trail (who, when, before, after).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, Field, field_validator

from compliance_rules.numbers import parse_number
from crm_bridge.admin import Actor, Admin, AdminError, Entity
from crm_bridge.dispositions import DispositionCode
from crm_bridge.records import AgentRole, DialMode
from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, TOKEN, TOKENS, ApiError
from dialer.api.pagination import PageQuery, decode_cursor, link_header, page
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Line, Name, QueryModel, RequestModel, ResponseModel, Text, UtcTime
from dialer.campaign.caller_id import CallerIdCheck
from dialer.runtime.agents import (
    EndpointReader,
    EndpointStatus,
    agent_endpoint,
    endpoint_status,
    pjsip_resource,
)

agent_routes = RouteTable("agents")
campaign_routes = RouteTable("campaigns")
list_routes = RouteTable("lists")
token_routes = RouteTable("tokens")
change_routes = RouteTable("admin")

ADMINS = (TokenRole.ADMIN,)
READERS = (TokenRole.ADMIN, TokenRole.SUPERVISOR, TokenRole.CRM)
# A campaign's caller ID is checked by the deployment too (vouched numbers in production); a
# refusal answers with the check's own reason (`caller_id_not_vouched`, ...), as a start does.
CALLER_ID_CHECK: web.AppKey[Callable[[str], CallerIdCheck]] = web.AppKey("caller_id_check")
# Asterisk's endpoints (`dialer serve` gives its ARI client): an agent's SIP endpoint is checked
# against them when it is set, so an agent is not created on a phone Asterisk cannot call.
SIP_ENDPOINTS: web.AppKey[EndpointReader] = web.AppKey("sip_endpoints")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LEGAL_START, LEGAL_END = time(8, 0), time(21, 0)


# ---- field types -----------------------------------------------------------------------------
def _entity_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", value):
        raise ValueError("must be 1-64 letters, digits, '-', '_', '.' or ':' (starting with a letter or digit)")
    return value


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}|(PJSIP|Local)/[A-Za-z0-9_.-]{1,80}(@[A-Za-z0-9_.-]{1,80})?",
                        value):
        raise ValueError("must be a PJSIP endpoint name (letters, digits, '-', '_', '.'), or a dial string "
                         "PJSIP/NAME or Local/EXTEN@CONTEXT")
    return value


def _sound(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", value) or len(value) > 200:
        raise ValueError("must be an Asterisk sound name such as 'custom/medsupp-safe-harbor'")
    return value


def e164_number(value: str) -> str:
    """A US number written in E.164 that can be dialed (and so called back)."""
    info = parse_number(value)
    if info.e164 is None or not info.ok:
        raise ValueError(f"{value!r} is not a valid, dialable US number ({info.detail or 'invalid'})")
    if info.e164 != value:
        raise ValueError(f"must be written in E.164 ({info.e164})")
    return value


EntityId = Annotated[str, AfterValidator(_entity_id)]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
Sound = Annotated[str, AfterValidator(_sound)]
E164 = Annotated[str, AfterValidator(e164_number)]


# ---- agents ----------------------------------------------------------------------------------
class AgentCreate(RequestModel):
    agent_id: EntityId
    name: Name
    sip_endpoint: Endpoint | None = Field(default=None, description="the PJSIP endpoint the agent is called on "
                                          "(`agent1001`, or `agent1001-web` for the browser phone; a dial string "
                                          "such as `Local/sim1@agent-sim` for a simulated agent); without one, "
                                          "the agent is called on `PJSIP/<agent_id>`, which is checked the same way")
    role: AgentRole = AgentRole.AGENT
    active: bool = True


class AgentUpdate(RequestModel):
    name: Name | None = None
    sip_endpoint: Endpoint | None = None
    role: AgentRole | None = None
    active: bool | None = None


class AgentBody(ResponseModel):
    agent_id: str
    name: str
    sip_endpoint: str | None
    role: AgentRole
    active: bool
    created_at: UtcTime
    updated_at: UtcTime


class AgentWritten(AgentBody):
    """An agent as created or changed, and what the admin should know about the change."""

    warnings: list[str] = Field(default_factory=list, description="e.g. the SIP endpoint could not be checked "
                                "because Asterisk did not answer (the change is made; check the endpoint)")


class AgentPage(ResponseModel):
    agents: list[AgentBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


# ---- campaigns -------------------------------------------------------------------------------
class AmdSettings(RequestModel):
    """Answering-machine detection and pacing settings (AMD()'s parameters in milliseconds;
    unset ones keep amd.conf's)."""

    machine_action: Literal["hangup", "message"] | None = Field(
        default=None, description="what a machine gets: hung up on, or the campaign's message")
    lines_per_agent: float | None = Field(default=None, ge=1, le=10, description="power dialing")
    preview_seconds: float | None = Field(default=None, ge=0, le=300, description="preview dialing")
    initial_silence_ms: int | None = Field(default=None, ge=500, le=10000)
    greeting_ms: int | None = Field(default=None, ge=500, le=10000)
    after_greeting_silence_ms: int | None = Field(default=None, ge=100, le=5000)
    total_analysis_time_ms: int | None = Field(default=None, ge=1000, le=15000)
    min_word_length_ms: int | None = Field(default=None, ge=20, le=1000)
    between_words_silence_ms: int | None = Field(default=None, ge=20, le=1000)
    maximum_number_of_words: int | None = Field(default=None, ge=1, le=20)
    silence_threshold: int | None = Field(default=None, ge=1, le=32767)
    maximum_word_length_ms: int | None = Field(default=None, ge=500, le=10000)


class Prompts(RequestModel):
    safe_harbor: Sound | None = Field(
        default=None, description="played instead of the generated safe-harbor message (it must name the "
        "seller and a number to call, and offer the press-9 opt-out: 47 CFR 64.1200(a)(7)(i))")


class CampaignFields(RequestModel):
    name: Name | None = None
    dial_mode: DialMode | None = None
    caller_id: E164 | None = Field(default=None, description="E.164; checked as a valid, dialable number "
                                   "(and, in production, among the agency's vouched numbers)")
    window_start: time | None = Field(default=None, description="local time the campaign may start calling "
                                      "(within 08:00-21:00; the gate keeps the narrower of this and the law)")
    window_end: time | None = None
    dispositions: list[DispositionCode] | None = Field(
        default=None, description="the codes its agents may pick (empty: all); must hold do_not_call")
    amd_enabled: bool | None = None
    amd_settings: AmdSettings | None = None
    seller_name: Name | None = Field(default=None, description="named in the safe-harbor message")
    dnc_callback_number: E164 | None = Field(default=None, description="the number to call to opt out")
    max_abandon_rate: float | None = Field(default=None, ge=0, le=0.03)
    prompts: Prompts | None = None
    speed_to_lead: bool | None = None
    required_consents: list[Annotated[str, AfterValidator(_entity_id)]] | None = None
    line_of_business: Line | None = None
    purpose: Literal["telemarketing", "servicing", "informational"] | None = None
    active: bool | None = None

    @field_validator("window_start", "window_end")
    @classmethod
    def _legal_window(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("must be a local time (HH:MM) without an offset: the lead's own time zone applies")
        if value is not None and (value.second or value.microsecond):
            # Kept and shown as HH:MM: seconds would be dropped silently.
            raise ValueError("must be a local time in whole minutes (HH:MM)")
        if value is not None and not LEGAL_START <= value <= LEGAL_END:
            raise ValueError("must be within 08:00-21:00 local (47 CFR 64.1200(c)(1))")
        return value

    @field_validator("dispositions")
    @classmethod
    def _disposition_set(cls, value: list[DispositionCode] | None) -> list[DispositionCode] | None:
        if value and DispositionCode.DO_NOT_CALL not in value:
            raise ValueError("must include do_not_call: a request not to be called is always honoured")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("must not repeat a code")
        return value


def check_window(start: object, end: object) -> None:
    """A window must start before it ends (times or `HH:MM[:SS]` strings)."""
    if start is not None and end is not None and str(start) >= str(end):
        raise ApiError(422, "invalid_field", "window_start must be before window_end", field="window_start")


class CampaignCreate(CampaignFields):
    campaign_id: EntityId
    name: Name


class CampaignBody(ResponseModel):
    campaign_id: str
    name: str
    dial_mode: DialMode
    caller_id: str | None
    window_start: str | None
    window_end: str | None
    dispositions: list[str]
    amd_enabled: bool
    amd_settings: dict[str, Any]
    seller_name: str | None
    dnc_callback_number: str | None
    max_abandon_rate: float
    prompts: dict[str, Any]
    speed_to_lead: bool
    required_consents: list[str]
    line_of_business: str | None
    purpose: str
    active: bool
    created_at: UtcTime
    updated_at: UtcTime


class CampaignPage(ResponseModel):
    campaigns: list[CampaignBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


class ListAssignment(RequestModel):
    list_id: EntityId


class CampaignListBody(ResponseModel):
    list_id: str
    assigned_at: UtcTime
    leads: int


class CampaignLists(ResponseModel):
    lists: list[CampaignListBody]
    next: str | None = Field(description="always null")


class AssignmentResult(ResponseModel):
    campaign_id: str
    list_id: str
    campaign_memberships_added: int | None = None
    memberships_retired: int | None = None


# ---- lists -----------------------------------------------------------------------------------
class ListCreate(RequestModel):
    list_id: EntityId
    name: Name
    description: Text | None = None
    active: bool = True


class ListUpdate(RequestModel):
    name: Name | None = None
    description: Text | None = None
    active: bool | None = None


class ListBody(ResponseModel):
    list_id: str
    name: str
    description: str | None
    active: bool
    created_at: UtcTime
    updated_at: UtcTime


class ListPage(ResponseModel):
    lists: list[ListBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


class ListLeads(RequestModel):
    lead_ids: list[Annotated[str, AfterValidator(_entity_id)]] = Field(min_length=1, max_length=10000)


class ListLeadsResult(ResponseModel):
    list_id: str
    leads: int
    campaign_memberships_added: int


# ---- tokens ----------------------------------------------------------------------------------
class TokenCreate(RequestModel):
    role: TokenRole
    agent_id: EntityId | None = Field(default=None, description="required for an agent token")
    label: Line | None = None


class TokenBody(ResponseModel):
    token_id: str
    role: TokenRole
    agent_id: str | None
    label: str | None
    created_at: UtcTime
    revoked_at: UtcTime | None


class IssuedTokenBody(TokenBody):
    token: str = Field(description="the secret, shown this once (only its SHA-256 is stored)")


class TokenPage(ResponseModel):
    tokens: list[TokenBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


# ---- changes ---------------------------------------------------------------------------------
class ChangeQuery(QueryModel):
    entity: Literal["agent", "campaign", "list", "token", "webhook"]
    entity_id: Annotated[str, AfterValidator(_entity_id)]


class ChangeBody(ResponseModel):
    change_id: str
    changed_at: UtcTime
    actor: str = Field(description="the token (`tok_...`) or the command line's user (`cli:NAME`)")
    actor_role: str
    channel: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ChangeList(ResponseModel):
    changes: list[ChangeBody]
    next: str | None = Field(description="always null")


# ---- helpers ---------------------------------------------------------------------------------
def admin_of(request: web.Request) -> Admin:
    return Admin(request.app[DEPS].store)


def actor_of(request: web.Request) -> Actor:
    token = request[TOKEN]
    return Actor(token.token_id, token.role.value, "api")


def as_api_error(error: AdminError) -> ApiError:
    return ApiError(error.status, error.code, str(error), field=error.field)


def campaign_values(fields: CampaignFields, *, unset: bool) -> dict[str, Any]:
    """The columns to write (`unset`: only the fields the request gave)."""
    values = fields.model_dump(exclude_unset=unset, exclude_none=not unset)
    for nested in ("amd_settings", "prompts"):
        if nested in values:
            model = getattr(fields, nested)
            values[nested] = {} if model is None else model.model_dump(exclude_none=True)
    if "dispositions" in values:
        values["dispositions"] = [str(code) for code in values["dispositions"] or []]
    if "required_consents" in values and values["required_consents"] is None:
        values["required_consents"] = []
    for required in ("name", "dial_mode", "amd_enabled", "max_abandon_rate", "speed_to_lead", "purpose", "active"):
        if unset and required in values and values[required] is None:
            raise ApiError(422, "invalid_field", f"{required} cannot be null", field=required)
    return values


def check_caller_id(request: web.Request, fields: CampaignFields) -> None:
    check = request.app.get(CALLER_ID_CHECK)
    if check is not None and fields.caller_id is not None:
        verdict = check(fields.caller_id)
        if verdict.code is not None:
            raise ApiError(422, verdict.code.value, verdict.message, field="caller_id")


async def _page(request: web.Request, query: PageQuery, entity: Entity, key: str) -> tuple[list[dict[str, Any]],
                                                                                            str | None]:
    after = decode_cursor(query)
    rows = await admin_of(request).list_all(entity, after=None if after is None else after[1], limit=query.limit + 1)
    return page(request, query, rows, lambda row: (_EPOCH, row[key]))


async def _run(coroutine: Any) -> Any:
    try:
        return await coroutine
    except AdminError as error:
        raise as_api_error(error) from None


AGENT_ID = {"agent_id": "the agent's id"}
CAMPAIGN_ID = {"campaign_id": "the campaign's id"}
LIST_ID = {"list_id": "the list's id"}
LOCATION = {"Location": "the resource created"}
NOT_FOUND = "`agent_not_found`, `campaign_not_found`, `list_not_found` or `token_not_found`"


# ---- agent routes ----------------------------------------------------------------------------
@agent_routes.get("/v1/agents", "listAgents", "The agents, by id", roles=READERS, query=PageQuery,
                  responses={200: Answer(AgentPage, "a page of agents", headers={"Link": "rel=next"})})
async def list_agents(request: web.Request, query: PageQuery) -> Reply:
    rows, next_url = await _page(request, query, Entity.AGENT, "agent_id")
    return Reply(AgentPage(agents=[AgentBody.model_validate(row) for row in rows], next=next_url),
                 headers=link_header(next_url))


async def endpoint_warnings(reader: EndpointReader | None, sip_endpoint: str | None,
                            agent_id: str | None = None) -> list[str]:
    """Check an agent's SIP endpoint with Asterisk (`GET /endpoints/PJSIP/{name}`): refused with
    422 `sip_endpoint_unknown` when Asterisk has no such endpoint; accepted with a warning when
    Asterisk cannot be asked (down, or not connected to this process), since an admin may set
    agents up before the phones' server runs. A `Local/...` dial string (a simulated agent) and
    an endpoint with no phone registered yet are accepted as they are.

    With `agent_id`, no endpoint (None) means the one the agent is then called on,
    `PJSIP/<agent_id>`, checked alike; without it, None is no endpoint to check."""
    if sip_endpoint is None and agent_id is None:
        return []
    dial_string = agent_endpoint(sip_endpoint, agent_id or "")
    if pjsip_resource(dial_string) is None:
        return []
    status = EndpointStatus.UNCHECKED if reader is None else await endpoint_status(reader, dial_string)
    if status is EndpointStatus.UNKNOWN:
        raise ApiError(422, "sip_endpoint_unknown", f"Asterisk has no SIP endpoint {dial_string}: give one of its "
                       "PJSIP endpoints (agent1001, agent1001-web, ...)", field="sip_endpoint")
    if status is EndpointStatus.UNCHECKED:
        return [f"Asterisk could not be asked whether {dial_string} exists: check it before the agent logs in"]
    return []


@agent_routes.post("/v1/agents", "createAgent", "Create an agent (and the SIP endpoint it is called on, checked "
                   "with Asterisk; without one, PJSIP/<agent_id>, checked alike)", roles=ADMINS, body=AgentCreate,
                   responses={201: Answer(AgentWritten, "the agent (with a warning if Asterisk could not be asked "
                                          "about its endpoint)", headers=LOCATION)},
                   errors={409: "`agent_exists`", 422: "an invalid field, or `sip_endpoint_unknown`: Asterisk has no "
                                                        "such endpoint"})
async def create_agent(request: web.Request, body: AgentCreate) -> Reply:
    warnings = await endpoint_warnings(request.app.get(SIP_ENDPOINTS), body.sip_endpoint, body.agent_id)
    row = await _run(admin_of(request).create(Entity.AGENT, body.model_dump(mode="json"), actor_of(request)))
    return Reply(AgentWritten.model_validate({**row, "warnings": warnings}), status=201,
                 location=f"/v1/agents/{body.agent_id}")


@agent_routes.get("/v1/agents/{agent_id}", "getAgent", "One agent", roles=READERS, parameters=AGENT_ID,
                  responses={200: Answer(AgentBody, "the agent")}, errors={404: "`agent_not_found`"})
async def get_agent(request: web.Request) -> Reply:
    row = await _run(admin_of(request).get(Entity.AGENT, request.match_info["agent_id"]))
    return Reply(AgentBody.model_validate(row))


@agent_routes.route("PATCH", "/v1/agents/{agent_id}", "updateAgent",
                    "Change an agent (the fields given; a new SIP endpoint is checked with Asterisk, and so is "
                    "PJSIP/<agent_id> when the endpoint is set to null)",
                    roles=ADMINS, parameters=AGENT_ID, body=AgentUpdate,
                    responses={200: Answer(AgentWritten, "the agent")},
                    errors={404: "`agent_not_found`", 422: "an invalid field, or `sip_endpoint_unknown`"})
async def update_agent(request: web.Request, body: AgentUpdate) -> Reply:
    values = body.model_dump(mode="json", exclude_unset=True)
    for required in ("name", "role", "active"):
        if required in values and values[required] is None:
            raise ApiError(422, "invalid_field", f"{required} cannot be null", field=required)
    agent_id = request.match_info["agent_id"]
    warnings: list[str] = []
    if "sip_endpoint" in values:  # only a change of the endpoint is checked; null: PJSIP/<agent_id>
        await _run(admin_of(request).get(Entity.AGENT, agent_id))  # an unknown agent is a 404 first
        warnings = await endpoint_warnings(request.app.get(SIP_ENDPOINTS), values["sip_endpoint"], agent_id)
    row = await _run(admin_of(request).update(Entity.AGENT, agent_id, values, actor_of(request)))
    return Reply(AgentWritten.model_validate({**row, "warnings": warnings}))


@agent_routes.post("/v1/agents/{agent_id}/disable", "disableAgent",
                   "Disable an agent: no new calls or logins (its history stays). Idempotent: disabling a "
                   "disabled agent changes and audits nothing", roles=ADMINS, parameters=AGENT_ID,
                   responses={200: Answer(AgentBody, "the agent")}, errors={404: "`agent_not_found`"})
async def disable_agent(request: web.Request) -> Reply:
    row = await _run(admin_of(request).update(Entity.AGENT, request.match_info["agent_id"], {"active": False},
                                              actor_of(request), action="disable"))
    return Reply(AgentBody.model_validate(row))


@agent_routes.post("/v1/agents/{agent_id}/enable", "enableAgent",
                   "Enable a disabled agent again. Idempotent: enabling an active agent changes and audits nothing",
                   roles=ADMINS, parameters=AGENT_ID,
                   responses={200: Answer(AgentBody, "the agent")}, errors={404: "`agent_not_found`"})
async def enable_agent(request: web.Request) -> Reply:
    row = await _run(admin_of(request).update(Entity.AGENT, request.match_info["agent_id"], {"active": True},
                                              actor_of(request), action="enable"))
    return Reply(AgentBody.model_validate(row))


# ---- campaign routes -------------------------------------------------------------------------
def campaign_body(row: dict[str, Any]) -> CampaignBody:
    values = dict(row)
    for name in ("window_start", "window_end"):
        if values.get(name) is not None:
            values[name] = str(values[name])[:5]
    return CampaignBody.model_validate({name: values.get(name) for name in CampaignBody.model_fields})


@campaign_routes.get("/v1/campaigns", "listCampaigns", "The campaigns' settings, by id", roles=READERS,
                     query=PageQuery,
                     responses={200: Answer(CampaignPage, "a page of campaigns", headers={"Link": "rel=next"})})
async def list_campaigns(request: web.Request, query: PageQuery) -> Reply:
    rows, next_url = await _page(request, query, Entity.CAMPAIGN, "campaign_id")
    return Reply(CampaignPage(campaigns=[campaign_body(row) for row in rows], next=next_url),
                 headers=link_header(next_url))


@campaign_routes.post("/v1/campaigns", "createCampaign",
                      "Create a campaign: dial mode, caller ID, calling window, dispositions, AMD and safe-harbor "
                      "settings, prompts", roles=ADMINS, body=CampaignCreate,
                      responses={201: Answer(CampaignBody, "the campaign's settings", headers=LOCATION)},
                      errors={409: "`campaign_exists`",
                              422: "an invalid field, or the caller ID's reason (`caller_id_not_vouched`, "
                                   "`caller_id_vouching_incomplete`, ...)"})
async def create_campaign(request: web.Request, body: CampaignCreate) -> Reply:
    check_caller_id(request, body)
    check_window(body.window_start, body.window_end)
    values = campaign_values(body, unset=False)
    row = await _run(admin_of(request).create(Entity.CAMPAIGN, values, actor_of(request)))
    return Reply(campaign_body(row), status=201, location=f"/v1/campaigns/{body.campaign_id}/settings")


@campaign_routes.get("/v1/campaigns/{campaign_id}/settings", "getCampaignSettings", "A campaign's settings",
                     roles=READERS, parameters=CAMPAIGN_ID, responses={200: Answer(CampaignBody, "the settings")},
                     errors={404: "`campaign_not_found`"})
async def get_campaign_settings(request: web.Request) -> Reply:
    return Reply(campaign_body(await _run(admin_of(request).get(Entity.CAMPAIGN, request.match_info["campaign_id"]))))


@campaign_routes.route("PATCH", "/v1/campaigns/{campaign_id}/settings", "updateCampaign",
                       "Change a campaign's settings (the fields given; a running campaign takes them at its next "
                       "start)", roles=ADMINS, parameters=CAMPAIGN_ID, body=CampaignFields,
                       responses={200: Answer(CampaignBody, "the settings")},
                       errors={404: "`campaign_not_found`",
                               422: "an invalid field, or the caller ID's reason (`caller_id_not_vouched`, ...)"})
async def update_campaign(request: web.Request, body: CampaignFields) -> Reply:
    check_caller_id(request, body)
    values = campaign_values(body, unset=True)
    admin = admin_of(request)
    campaign_id = request.match_info["campaign_id"]
    if "window_start" in values or "window_end" in values:
        current = await _run(admin.get(Entity.CAMPAIGN, campaign_id))
        check_window(values.get("window_start", current["window_start"]), values.get("window_end", current["window_end"]))
    row = await _run(admin.update(Entity.CAMPAIGN, campaign_id, values, actor_of(request)))
    return Reply(campaign_body(row))


@campaign_routes.get("/v1/campaigns/{campaign_id}/lists", "listCampaignLists", "The lists assigned to a campaign",
                     roles=READERS, parameters=CAMPAIGN_ID, responses={200: Answer(CampaignLists, "the lists")},
                     errors={404: "`campaign_not_found`"})
async def campaign_lists(request: web.Request) -> Reply:
    admin = admin_of(request)
    campaign_id = request.match_info["campaign_id"]
    await _run(admin.get(Entity.CAMPAIGN, campaign_id))
    rows = await admin.lists_of_campaign(campaign_id)
    return Reply(CampaignLists(lists=[CampaignListBody.model_validate(row) for row in rows], next=None))


@campaign_routes.post("/v1/campaigns/{campaign_id}/lists", "assignList",
                      "Assign a lead list to a campaign: its leads become the campaign's to dial", roles=ADMINS,
                      parameters=CAMPAIGN_ID, body=ListAssignment,
                      responses={201: Answer(AssignmentResult, "assigned", headers=LOCATION)},
                      errors={404: "`campaign_not_found`", 409: "`list_assigned`", 422: "`unknown_list`"})
async def assign_list(request: web.Request, body: ListAssignment) -> Reply:
    campaign_id = request.match_info["campaign_id"]
    result = await _run(admin_of(request).assign_list(campaign_id, body.list_id, actor_of(request)))
    return Reply(AssignmentResult.model_validate(result), status=201, location=f"/v1/campaigns/{campaign_id}/lists")


@campaign_routes.delete("/v1/campaigns/{campaign_id}/lists/{list_id}", "unassignList",
                        "Take a list off a campaign: its leads not yet done leave the campaign's hopper",
                        roles=ADMINS, parameters={**CAMPAIGN_ID, **LIST_ID},
                        responses={200: Answer(AssignmentResult, "taken off")},
                        errors={404: "`list_not_assigned`"})
async def unassign_list(request: web.Request) -> Reply:
    result = await _run(admin_of(request).unassign_list(request.match_info["campaign_id"],
                                                        request.match_info["list_id"], actor_of(request)))
    return Reply(AssignmentResult.model_validate(result))


# ---- list routes -----------------------------------------------------------------------------
@list_routes.get("/v1/lists", "listLists", "The lead lists, by id", roles=READERS, query=PageQuery,
                 responses={200: Answer(ListPage, "a page of lists", headers={"Link": "rel=next"})})
async def list_lists(request: web.Request, query: PageQuery) -> Reply:
    rows, next_url = await _page(request, query, Entity.LIST, "list_id")
    return Reply(ListPage(lists=[ListBody.model_validate(row) for row in rows], next=next_url),
                 headers=link_header(next_url))


@list_routes.post("/v1/lists", "createList", "Create a lead list", roles=ADMINS, body=ListCreate,
                  responses={201: Answer(ListBody, "the list", headers=LOCATION)},
                  errors={409: "`list_exists`", 422: "an invalid field"})
async def create_list(request: web.Request, body: ListCreate) -> Reply:
    row = await _run(admin_of(request).create(Entity.LIST, body.model_dump(), actor_of(request)))
    return Reply(ListBody.model_validate(row), status=201, location=f"/v1/lists/{body.list_id}")


@list_routes.get("/v1/lists/{list_id}", "getList", "One lead list", roles=READERS, parameters=LIST_ID,
                 responses={200: Answer(ListBody, "the list")}, errors={404: "`list_not_found`"})
async def get_list(request: web.Request) -> Reply:
    return Reply(ListBody.model_validate(await _run(admin_of(request).get(Entity.LIST, request.match_info["list_id"]))))


@list_routes.route("PATCH", "/v1/lists/{list_id}", "updateList", "Change a lead list (the fields given)",
                   roles=ADMINS, parameters=LIST_ID, body=ListUpdate, responses={200: Answer(ListBody, "the list")},
                   errors={404: "`list_not_found`", 422: "an invalid field"})
async def update_list(request: web.Request, body: ListUpdate) -> Reply:
    values = body.model_dump(exclude_unset=True)
    for required in ("name", "active"):
        if required in values and values[required] is None:
            raise ApiError(422, "invalid_field", f"{required} cannot be null", field=required)
    row = await _run(admin_of(request).update(Entity.LIST, request.match_info["list_id"], values, actor_of(request)))
    return Reply(ListBody.model_validate(row))


@list_routes.post("/v1/lists/{list_id}/leads", "addListLeads",
                  "Put leads on a list (they join the campaigns it is assigned to)", roles=ADMINS,
                  parameters=LIST_ID, body=ListLeads, responses={200: Answer(ListLeadsResult, "done")},
                  errors={404: "`list_not_found`", 422: "`unknown_lead` (field `lead_ids`)"})
async def add_list_leads(request: web.Request, body: ListLeads) -> Reply:
    result = await _run(admin_of(request).add_to_list(request.match_info["list_id"], body.lead_ids, actor_of(request)))
    return Reply(ListLeadsResult.model_validate(result))


# ---- token routes ----------------------------------------------------------------------------
@token_routes.get("/v1/tokens", "listTokens", "The API tokens (never their secrets)", roles=ADMINS, query=PageQuery,
                  responses={200: Answer(TokenPage, "a page of tokens", headers={"Link": "rel=next"})})
async def list_tokens(request: web.Request, query: PageQuery) -> Reply:
    rows, next_url = await _page(request, query, Entity.TOKEN, "token_id")
    return Reply(TokenPage(tokens=[TokenBody.model_validate(row) for row in rows], next=next_url),
                 headers=link_header(next_url))


@token_routes.post("/v1/tokens", "issueToken", "Issue an API token; its secret is in this answer only",
                   roles=ADMINS, body=TokenCreate,
                   responses={201: Answer(IssuedTokenBody, "the token and its secret", headers=LOCATION)},
                   errors={422: "an invalid field, or `unknown_agent`"})
async def issue_token(request: web.Request, body: TokenCreate) -> Reply:
    row, secret = await _run(admin_of(request).issue_token(body.role.value, actor_of(request), agent_id=body.agent_id,
                                                           label=body.label))
    return Reply(IssuedTokenBody.model_validate({**row, "token": secret}), status=201,
                 location=f"/v1/tokens/{row['token_id']}")


@token_routes.delete("/v1/tokens/{token_id}", "revokeToken", "Revoke a token (refused everywhere within 10 s)",
                     roles=ADMINS, parameters={"token_id": "the token's id (`tok_...`)"},
                     responses={200: Answer(TokenBody, "the revoked token")}, errors={404: "`token_not_found`"})
async def revoke_token(request: web.Request) -> Reply:
    token_id = request.match_info["token_id"]
    row = await _run(admin_of(request).revoke_token(token_id, actor_of(request)))
    request.app[TOKENS].forget(token_id)
    return Reply(TokenBody.model_validate(row))


# ---- audit -----------------------------------------------------------------------------------
@change_routes.get("/v1/admin-changes", "listAdminChanges",
                   "Who changed an agent, campaign, list, token or webhook, when, and what it was before and after",
                   roles=(TokenRole.ADMIN, TokenRole.SUPERVISOR), query=ChangeQuery,
                   responses={200: Answer(ChangeList, "the changes, oldest first")})
async def list_changes(request: web.Request, query: ChangeQuery) -> Reply:
    rows = await admin_of(request).changes(Entity(query.entity), query.entity_id)
    return Reply(ChangeList(changes=[ChangeBody.model_validate(row) for row in rows], next=None))


ROUTE_TABLES = (agent_routes, campaign_routes, list_routes, token_routes, change_routes)
