"""Reading leads: `GET /v1/leads` (search by name, phone or e-mail, a page at a time) and
`GET /v1/leads/{lead_id}`. An agent token sees only the leads it works (owns, or has called);
staff tokens see every lead. Leads are written by `POST /v1/leads` (`dialer.campaign.api`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated

from aiohttp import web
from pydantic import BeforeValidator, Field

from crm_bridge.dispositions import PipelineStage
from crm_bridge.kinds import RecordKind
from crm_bridge.records import CallDirection, InvalidRecord
from crm_bridge.store import Lead, TokenRole
from dialer.api.callback_window import CallbackRules
from dialer.api.crm import CALL_ID, visible_call
from dialer.api.http import ALL_ROLES, DEPS, TOKEN, ApiError
from dialer.api.pagination import PageQuery, decode_cursor, link_header, page
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Day, Line, Name, QueryModel, RequestModel, ResponseModel, UsPhone, UtcTime
from dialer.campaign.intake import IntakeError, parse_web_lead

routes = RouteTable("leads")


class ConsentBody(ResponseModel):
    consent_id: str
    kind: str = Field(description="e.g. pewc (prior express written consent), ptc (CMS permission to contact)")
    phone: str | None
    obtained_at: UtcTime
    source: str
    evidence_ref: str | None
    expires_at: UtcTime | None
    revoked_at: UtcTime | None


class LeadBody(ResponseModel):
    """A lead as the CRM keeps it."""

    lead_id: str
    first_name: str | None
    last_name: str | None
    phones: list[str] = Field(description="E.164, most preferred first")
    email: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    zip: str | None
    timezone_hint: str | None
    pipeline_stage: PipelineStage
    source: str | None
    owner_agent_id: str | None
    callback_at: UtcTime | None
    needs_review: bool = Field(description="an intake merge found conflicting values; a person must look")
    review_reason: str | None
    created_at: UtcTime
    updated_at: UtcTime
    consents: list[ConsentBody]

    @classmethod
    def of(cls, lead: Lead) -> LeadBody:
        return cls.model_validate(asdict(lead))


class LeadPage(ResponseModel):
    leads: list[LeadBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


def _stripped(value: object) -> object:
    # What a person typed into a CRM's search box often ends with a space; leads are stored
    # stripped (intake), so " eve " must find Eve.
    return value.strip() if isinstance(value, str) else value


Searched = Annotated[Line, BeforeValidator(_stripped)]


class LeadQuery(PageQuery):
    name: Searched | None = Field(default=None, min_length=1, description='part of "first last", any case')
    phone: UsPhone | None = Field(default=None, description="a US number, any format")
    email: Searched | None = Field(default=None, min_length=1, description="the whole address, any case")

def _worked_by(request: web.Request) -> str | None:
    token = request[TOKEN]
    return token.agent_id if token.role is TokenRole.AGENT else None


@routes.get("/v1/leads", "listLeads", "Search leads by name, phone or e-mail, newest first (agents: the leads they "
            "work)", roles=ALL_ROLES, query=LeadQuery,
            responses={200: Answer(LeadPage, "a page of leads", headers={"Link": "rel=next"})})
async def list_leads(request: web.Request, query: LeadQuery) -> Reply:
    """Every given filter must match. An agent token gets only the leads it owns or has called."""
    leads = await request.app[DEPS].store.search_leads(
        name=query.name, phone=query.phone, email=query.email, worked_by=_worked_by(request),
        limit=query.limit + 1, after=decode_cursor(query),
    )
    items, next_url = page(request, query, leads, lambda lead: (lead.created_at, lead.lead_id))
    return Reply(LeadPage(leads=[LeadBody.of(lead) for lead in items], next=next_url), headers=link_header(next_url))


@routes.get("/v1/leads/{lead_id}", "getLead", "One lead, with its consent records", roles=ALL_ROLES,
            parameters={"lead_id": "the lead's id"}, responses={200: Answer(LeadBody, "the lead")},
            errors={404: "`lead_not_found` (or not one this agent works)"})
async def get_lead(request: web.Request) -> Reply:
    store = request.app[DEPS].store
    lead_id = request.match_info["lead_id"]
    lead = await store.get_lead(lead_id)
    agent_id = _worked_by(request)
    if lead is None or (agent_id is not None and not await store.lead_worked_by(lead_id, agent_id)):
        raise ApiError(404, "lead_not_found", "no such lead")
    return Reply(LeadBody.of(lead))


class CallbackTimesQuery(QueryModel):
    date: Day | None = Field(default=None, description="the day, in the lead's (first) time zone; default: "
                                                              "today there")


class CallbackTimes(ResponseModel):
    """When a callback for the call's lead may be set: the starts, every 30 minutes, inside every
    calling window the gate applies to the lead (federal, the campaign's, its states' hours,
    no-call holidays), from 5 minutes ahead."""

    call_id: str
    date: dt.date
    zones: list[str] = Field(description="every time zone the lead may be in (IANA names)")
    times: list[UtcTime]


@routes.get("/v1/calls/{call_id}/callback-times", "getCallbackTimes",
            "The times a callback for this call's lead may be set for (the console's callback picker)",
            roles=ALL_ROLES, parameters=CALL_ID, query=CallbackTimesQuery,
            responses={200: Answer(CallbackTimes, "the allowed times of that day (none: a day without any)")},
            errors={404: "`call_not_found` (or not this agent's call)",
                    422: "`call_has_no_number`, or an invalid `date`",
                    503: "`rules_unavailable`: the calling-window rules could not be loaded"})
async def callback_times(request: web.Request, query: CallbackTimesQuery) -> Reply:
    deps = request.app[DEPS]
    call = await visible_call(request)
    rules = await CallbackRules.of(deps, call)
    day, times = rules.day(query.date, deps.clock())
    return Reply(CallbackTimes(call_id=call.call_id, date=day, zones=list(rules.location.zones), times=times))


class CallerDetails(RequestModel):
    """What the agent learned from an inbound caller the CRM did not know."""

    first_name: Name
    last_name: Name | None = None
    email: Line | None = None
    state: Line | None = Field(default=None, description="two-letter US state code")
    zip: Line | None = Field(default=None, description="12345 or 12345-6789")
    address_line1: Name | None = None
    city: Name | None = None


class CallerDescribed(ResponseModel):
    lead_id: str
    filled: list[str] = Field(description="the fields written (those the lead had no value for)")


@routes.post("/v1/calls/{call_id}/caller", "describeCaller",
             "Fill in an inbound caller's details (the new-lead form of the agent's console)", roles=ALL_ROLES,
             parameters=CALL_ID, body=CallerDetails,
             responses={202: Answer(CallerDescribed, "stored durably; reaches the CRM's lead",
                                    headers={"Location": "the lead"})},
             errors={404: "`call_not_found` (agents: their own calls only)",
                     409: "`not_inbound`: only an inbound call's caller is described this way",
                     422: "a field is invalid (`field`)"})
async def describe_caller(request: web.Request, body: CallerDetails) -> Reply:
    """Only the fields the call's lead has no value for are written: what the CRM knew is never
    overwritten (an agent cannot rename a lead it did not create), and the lead becomes the
    agent's when it had no owner."""
    call = await visible_call(request)
    if call.direction is not CallDirection.INBOUND or call.lead_id is None or call.lead_number is None:
        raise ApiError(409, "not_inbound", "only an inbound call's caller can be described", field="call_id")
    store = request.app[DEPS].store
    lead = await store.get_lead(call.lead_id)
    if lead is None:
        raise ApiError(404, "lead_not_found", "the call's lead is not in the CRM yet; retry in a moment")
    try:
        details = parse_web_lead({**body.model_dump(exclude_none=True), "phone": call.lead_number,
                                  "source": "inbound_call"})
    except IntakeError as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field) from None
    patch: dict[str, object] = {
        name: getattr(details, name) for name in CallerDetails.model_fields
        if getattr(details, name) is not None and not getattr(lead, name)}
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and lead.owner_agent_id is None:
        patch["owner_agent_id"] = token.agent_id
    if patch:
        try:
            await request.app[DEPS].records.put(RecordKind.LEAD_UPSERT, {"lead_id": lead.lead_id, **patch})
        except InvalidRecord as error:
            raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    filled = sorted(name for name in patch if name != "owner_agent_id")
    return Reply(CallerDescribed(lead_id=lead.lead_id, filled=filled), status=202,
                 location=f"/v1/leads/{lead.lead_id}")
