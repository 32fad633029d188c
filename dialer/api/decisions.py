"""The compliance gate's audited decisions (`compliance_decisions`), for staff only: every
dial, text and callback was checked, and here is each check with its reasons, the zones and
local times it saw, and the rule data it used."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import ConfigDict, Field

from dialer.api.crm import CALL_ID, visible_call
from dialer.api.http import ALL_ROLES, DEPS, STAFF_ROLES, ApiError
from dialer.api.pagination import PageQuery, decode_cursor, link_header, page
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Id, ResponseModel, UsPhone, UtcTime, UtcTimeIn

routes = RouteTable("compliance")


class DecisionReason(ResponseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str | None = None
    citation: str | None = None


class DecisionBody(ResponseModel):
    decision_id: str
    decided_at: UtcTime
    phone: str
    lead_id: str | None
    campaign_id: str | None
    purpose: str
    allowed: bool
    reasons: list[DecisionReason] = Field(description="why it was blocked (empty when allowed)")
    timezones: list[Any] = Field(description="every zone the lead may be in")
    local_times: list[Any] = Field(description="the local time in each of those zones")
    data_versions: dict[str, Any] = Field(description="the rule data and list dates the decision used")
    notices: list[dict[str, Any]] = Field(description="what an allowed contact had to do (e.g. announce recording)")


class DecisionPage(ResponseModel):
    decisions: list[DecisionBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


class DecisionQuery(PageQuery):
    phone: UsPhone | None = Field(default=None, description="a US number, any format")
    lead_id: Id | None = None
    campaign_id: Id | None = None
    allowed: bool | None = Field(default=None, description="true: allowed only; false: blocked only")
    since: UtcTimeIn | None = Field(default=None, description="decided at or after this time")

@routes.get("/v1/decisions", "listDecisions", "The compliance gate's decisions, newest first (staff only)",
            roles=STAFF_ROLES, query=DecisionQuery,
            responses={200: Answer(DecisionPage, "a page of decisions", headers={"Link": "rel=next"})})
async def list_decisions(request: web.Request, query: DecisionQuery) -> Reply:
    rows = await request.app[DEPS].store.list_decisions(
        phone=query.phone, lead_id=query.lead_id, campaign_id=query.campaign_id, allowed=query.allowed,
        since=query.since, limit=query.limit + 1, after=decode_cursor(query),
    )
    items, next_url = page(request, query, rows, lambda row: (row.decided_at, row.decision_id))
    body = DecisionPage(decisions=[DecisionBody.model_validate(asdict(row)) for row in items], next=next_url)
    return Reply(body, headers=link_header(next_url))


@routes.get("/v1/decisions/{decision_id}", "getDecision", "One decision of the compliance gate (staff only)",
            roles=STAFF_ROLES, parameters={"decision_id": "the decision's id (a UUID)"},
            responses={200: Answer(DecisionBody, "the decision")}, errors={404: "`decision_not_found`"})
async def get_decision(request: web.Request) -> Reply:
    row = await request.app[DEPS].store.get_decision(request.match_info["decision_id"])
    if row is None:
        raise ApiError(404, "decision_not_found", "no such decision")
    return Reply(DecisionBody.model_validate(asdict(row)))


@routes.get("/v1/calls/{call_id}/decision", "getCallDecision",
            "The compliance gate's decision for a call: its notices are the agent's script (agents: own calls)",
            roles=ALL_ROLES, parameters=CALL_ID, responses={200: Answer(DecisionBody, "the decision")},
            errors={404: "`call_not_found`, or `decision_not_found` (none yet, or an inbound call)"})
async def get_call_decision(request: web.Request) -> Reply:
    """What the gate said when the call's lead was dialed: the zones and local times it saw and the
    notices the agent must give (e.g. the recording announcement in an all-party-consent state)."""
    call = await visible_call(request)
    row = None
    if call.compliance_decision_id is not None:
        row = await request.app[DEPS].store.get_decision(call.compliance_decision_id)
    if row is None:
        raise ApiError(404, "decision_not_found", "no decision for this call (yet)")
    return Reply(DecisionBody.model_validate(asdict(row)))
