"""The CRM's routes that belong to no one kind of call: the call log, hanging up any live
call, dispositions and opt-outs."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Protocol, runtime_checkable

from aiohttp import web
from pydantic import Field

from compliance_rules.numbers import parse_number
from compliance_rules.optout import OptOutError, OptOutSource
from compliance_rules.rules import OPTOUT
from crm_bridge.dispositions import DispositionCode, DispositionError, PipelineStage, wrap_up_records
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import OutboxStats
from crm_bridge.records import CallDirection, CallOutcome, InvalidRecord
from crm_bridge.store import Call, TokenRole
from dialer.api.callback_window import CallbackRules
from dialer.api.http import ALL_ROLES, CALL_CONTROLS, DEPS, TOKEN, WRAP_UPS, ApiError
from dialer.api.pagination import PageQuery, decode_cursor, link_header, page
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Id, Line, PhoneText, RequestModel, ResponseModel, Text, UtcTime, UtcTimeIn
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.live import HangupBy

routes = RouteTable("calls")
opt_out_routes = RouteTable("opt-outs")
CALL_ID = {"call_id": "the call's id (`call-...` for click-to-call, `cmp-...` for a campaign call)"}
LOCATION = {"Location": "the resource created, or where to follow the work accepted"}


# ---- models ----------------------------------------------------------------------------------
class CallBody(ResponseModel):
    """One row of the CRM calls table."""

    call_id: str
    version: int = Field(description="grows with every change of the row")
    direction: CallDirection
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    lead_number: str | None = Field(description="E.164")
    agent_endpoint: str | None
    caller_id: str | None
    requested_at: UtcTime
    agent_answered_at: UtcTime | None
    lead_ringing_at: UtcTime | None
    lead_answered_at: UtcTime | None
    bridged_at: UtcTime | None
    ended_at: UtcTime | None
    outcome: CallOutcome | None = Field(description="how the call ended; null while it is in progress")
    hangup_cause: int | None = Field(description="Asterisk's hangup cause (Q.850)")
    hangup_cause_text: str | None = Field(description=(
        "Asterisk's text of the hangup cause; for a click-to-call that failed before any leg had "
        "one, why the agent's phone could not be rung: `softphone_not_registered`, `sip_endpoint_unknown`"))
    sip_code: int | None
    ring_seconds: float | None
    talk_seconds: float | None
    total_seconds: float | None
    recording_id: str | None
    compliance_decision_id: str | None
    amd_result: str | None
    amd_cause: str | None
    greeting_ended_at: UtcTime | None
    safe_harbor_played: bool
    abandoned: bool
    updated_at: UtcTime

    @classmethod
    def of(cls, call: Call) -> CallBody:
        return cls.model_validate(asdict(call))


class CallPage(ResponseModel):
    calls: list[CallBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


class CallQuery(PageQuery):
    lead_id: Id | None = None
    agent_id: Id | None = Field(default=None, description="agents: only their own id")
    campaign_id: Id | None = None
    since: UtcTimeIn | None = Field(default=None, description="requested at or after this time")


class DispositionRequest(RequestModel):
    code: Line = Field(description="one of: " + ", ".join(code.value for code in DispositionCode))
    notes: Text | None = None
    callback_at: UtcTimeIn | None = Field(default=None, description="required with `callback`")


class DispositionAccepted(ResponseModel):
    disposition_id: str
    call_id: str
    code: str


class DispositionBody(ResponseModel):
    disposition_id: str
    call_id: str | None
    lead_id: str | None
    agent_id: str | None
    code: DispositionCode
    notes: str | None
    callback_at: UtcTime | None
    stage_before: PipelineStage | None
    stage_after: PipelineStage | None
    disposed_at: UtcTime


class DispositionList(ResponseModel):
    dispositions: list[DispositionBody]
    next: str | None = Field(description="always null: a call has few dispositions")


class DispositionChoices(ResponseModel):
    codes: list[DispositionCode] = Field(
        description="the codes an agent may record for this call, in the campaign's order (every code when the "
                    "call has no campaign or its campaign names none)")
    campaign_id: str | None
    from_campaign: bool = Field(description="true when the codes are the campaign's own set")


class OptOutRequest(RequestModel):
    phone: PhoneText = Field(description="a US number, any format")
    source: Line = Field(description="one of: " + ", ".join(source.value for source in OptOutSource))
    lead_id: Id | None = None


class OptOutAccepted(ResponseModel):
    phone: str = Field(description="E.164")
    source: OptOutSource
    recorded_at: UtcTime
    lead_id: str | None


class OptOutRecord(ResponseModel):
    opt_out_id: str
    phone: str
    source: str
    lead_id: str | None
    call_id: str | None
    created_at: UtcTime


class OptOutStatus(ResponseModel):
    phone: str = Field(description="E.164")
    opted_out: bool = Field(description="on the opt-out list every gate reads now (every channel); the CRM's "
                                        "records (`opt_outs`) arrive through the outbox a moment after an opt-out, "
                                        "and stay after a texted START lifts it")
    opt_outs: list[OptOutRecord]


# ---- routes ----------------------------------------------------------------------------------
# How long a read of a call not in the CRM yet waits for its row. `POST /v1/calls` answers 202
# before the call's first snapshot has gone through the snapshot writer and the outbox to
# PostgreSQL (about 0.1 s): a client that follows `Location` at once must find the call, not a
# 404 `call_not_found`.
CATCH_UP_SECONDS = 1.0
CATCH_UP_STEP = 0.05
# How long this process remembers a call it accepted: far longer than its row takes to reach
# PostgreSQL, even behind an outbox catching up after an outage of a few seconds.
ACCEPTED_CALL_SECONDS = 60.0


class AcceptedCalls:
    """The ids of the calls this process accepted (`POST /v1/calls` answered 202) in the last
    `keep` seconds: the only ids, besides its live calls, whose row `call_row` waits for. Any
    other id is no call this process knows of, and is answered at once: waiting for it whenever
    the outbox held records (it always does under load) made every 404 take a second."""

    def __init__(self, keep: float = ACCEPTED_CALL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep = keep
        self.clock = clock
        self._accepted: OrderedDict[str, float] = OrderedDict()  # oldest first

    def add(self, call_id: str) -> None:
        now = self.clock()
        self._accepted[call_id] = now
        self._accepted.move_to_end(call_id)
        while self._accepted:  # forget the expired ones, so memory follows the call rate
            oldest, since = next(iter(self._accepted.items()))
            if now - since <= self.keep:
                break
            del self._accepted[oldest]

    def __len__(self) -> int:
        """How many ids are held (the expired ones go at the next `add`)."""
        return len(self._accepted)

    def __contains__(self, call_id: object) -> bool:
        since = self._accepted.get(call_id) if isinstance(call_id, str) else None
        return since is not None and self.clock() - since <= self.keep


ACCEPTED_CALLS: web.AppKey[AcceptedCalls] = web.AppKey("accepted_calls", AcceptedCalls)


@runtime_checkable
class Flushable(Protocol):
    """A record sink that can be waited for (`Outbox`)."""

    async def flush(self, timeout: float) -> bool: ...  # noqa: ASYNC109 - the outbox's own signature

    def stats(self) -> OutboxStats: ...


def _ours(request: web.Request, call_id: str) -> bool:
    """Whether this process runs `call_id` now or accepted it lately."""
    if call_id in request.app.get(ACCEPTED_CALLS, ()):
        return True
    return any(control.call_status(call_id) is not None for control in request.app.get(CALL_CONTROLS, []))


async def call_row(request: web.Request, call_id: str) -> Call | None:
    """The CRM's row of `call_id`. When there is none yet but this process runs the call or
    accepted it lately (`AcceptedCalls`), its row is waited for (through the outbox), up to
    `CATCH_UP_SECONDS`; any other id gets one read and no wait."""
    deps = request.app[DEPS]
    call = await deps.store.get_call(call_id)
    if call is not None or not isinstance(deps.records, Flushable) or not _ours(request, call_id):
        return call
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CATCH_UP_SECONDS
    while True:
        await deps.records.flush(max(0.01, deadline - loop.time()))
        call = await deps.store.get_call(call_id)
        if call is not None or loop.time() >= deadline:
            return call
        await asyncio.sleep(CATCH_UP_STEP)


async def visible_call(request: web.Request) -> Call:
    """The call named in the path, if this token may see it (agents: only their own calls); one
    just accepted is waited for (`call_row`)."""
    call = await call_row(request, request.match_info["call_id"])
    token = request[TOKEN]
    if call is None or (token.role is TokenRole.AGENT and call.agent_id != token.agent_id):
        # An agent is not told whether another agent's call exists.
        raise ApiError(404, "call_not_found", "no such call")
    return call


@routes.get("/v1/calls/{call_id}", "getCall", "One call's log", roles=ALL_ROLES, parameters=CALL_ID,
            responses={200: Answer(CallBody, "the call")}, errors={404: "`call_not_found`"})
async def get_call(request: web.Request) -> Reply:
    return Reply(CallBody.of(await visible_call(request)))


@routes.get("/v1/calls", "listCalls", "List calls, newest first (agents: only their own)", roles=ALL_ROLES,
            query=CallQuery, responses={200: Answer(CallPage, "a page of calls", headers={"Link": "rel=next"})},
            errors={403: "an agent token asked for another agent's calls"})
async def list_calls(request: web.Request, query: CallQuery) -> Reply:
    agent_id = query.agent_id
    token = request[TOKEN]
    if token.role is TokenRole.AGENT:
        if agent_id not in (None, token.agent_id):
            raise ApiError(403, "forbidden", "an agent token may list only its own calls", field="agent_id")
        agent_id = token.agent_id
    calls = await request.app[DEPS].store.list_calls(
        lead_id=query.lead_id, agent_id=agent_id, campaign_id=query.campaign_id, since=query.since,
        limit=query.limit + 1, after=decode_cursor(query),
    )
    items, next_url = page(request, query, calls, lambda call: (call.requested_at, call.call_id))
    return Reply(CallPage(calls=[CallBody.of(call) for call in items], next=next_url), headers=link_header(next_url))


@routes.post("/v1/calls/{call_id}/disposition", "disposeCall",
             "Record the agent's disposition; moves the lead's pipeline stage; do_not_call opts the number out "
             "at once", roles=ALL_ROLES, parameters=CALL_ID, body=DispositionRequest, idempotent=True,
             responses={202: Answer(DispositionAccepted, "stored durably; reaches the CRM tables", headers=LOCATION)},
             errors={404: "`call_not_found`", 422: "`invalid_disposition` (`field`: code: unknown, or not among "
                                                   "the campaign's dispositions), `callback_outside_window` (the "
                                                   "gate would block a call then: see `callback-times`), "
                                                   "`callback_in_past`, or an invalid field",
                     503: "`rules_unavailable`: the calling-window rules for a callback could not be loaded"})
async def post_disposition(request: web.Request, body: DispositionRequest) -> Reply:
    deps = request.app[DEPS]
    call = await visible_call(request)
    if call.campaign_id is not None:
        campaign = await deps.store.get_campaign(call.campaign_id)
        if campaign is not None and campaign.dispositions and body.code not in campaign.dispositions:
            raise ApiError(422, "invalid_disposition", f"campaign {campaign.campaign_id} does not use the code "
                           f"{body.code!r} (its codes: {', '.join(campaign.dispositions)})", field="code")
    if body.callback_at is not None:
        # A time already past is a CRM's mistake (a local time sent as UTC, a wrong year): the
        # callback could never be made when promised, so it is refused rather than dialed at once.
        if body.callback_at <= deps.clock():
            raise ApiError(422, "callback_in_past", "the callback time has passed already: give a time to come "
                           "(see callback-times)", field="callback_at")
        # Only a time the gate would allow: the callback is dialed then (compliance_rules windows).
        refusal = (await CallbackRules.of(deps, call)).refusal(body.callback_at)
        if refusal is not None:
            raise ApiError(422, "callback_outside_window", f"the callback cannot be at that time: {refusal}",
                           field="callback_at")
    disposition_id = new_id(Prefix.DISPOSITION)
    try:
        records = wrap_up_records(
            disposition_id=disposition_id, code=body.code, disposed_at=deps.clock(), call_id=call.call_id,
            lead_id=call.lead_id, agent_id=call.agent_id, campaign_id=call.campaign_id, phone=call.lead_number,
            notes=body.notes, callback_at=body.callback_at,
        )
    except DispositionError as error:
        raise ApiError(422, "invalid_disposition", str(error), field="code") from None
    try:
        if any(kind == RecordKind.OPT_OUT for kind, _ in records) and call.lead_number:
            # Do-not-call: the one opt-out path (the CRM's records durable first, then Redis).
            await deps.opt_outs.commit(records, call.lead_number)
        else:
            await deps.records.put_many(records)
    except InvalidRecord as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    wrap_ups = request.app.get(WRAP_UPS)
    if wrap_ups is not None and call.agent_id is not None:
        wrap_ups.disposed(call.agent_id, call.call_id)  # the disposition is the end of wrap-up
    return Reply(DispositionAccepted(disposition_id=disposition_id, call_id=call.call_id, code=body.code),
                 status=202, location=f"/v1/calls/{call.call_id}/dispositions")


class HangupAccepted(ResponseModel):
    call_id: str
    status: str = Field(description="ending")


@routes.post("/v1/calls/{call_id}/hangup", "hangUpCall", "End a live call, whichever kind it is (click-to-call or "
             "campaign); agents only their own", roles=ALL_ROLES, parameters=CALL_ID,
             responses={202: Answer(HangupAccepted, "the call is ending",
                                    headers={"Location": "the call (`GET /v1/calls/{call_id}`)"})},
             errors={404: "`call_not_found`", 409: "`call_not_active`: the call has already ended",
                     503: "`controller_unavailable`: this API runs without the call runtimes"})
async def post_hangup(request: web.Request) -> Reply:
    controls = request.app.get(CALL_CONTROLS) or []
    token = request[TOKEN]
    call_id = request.match_info["call_id"]
    live = next((control for control in controls if control.call_status(call_id) is not None), None)
    if live is None or token.role is TokenRole.AGENT:
        # A live call needs no database to be hung up, unless an agent's ownership must be read.
        call = await request.app[DEPS].store.get_call(call_id)
        owner = call.agent_id if call is not None else None
        if (call is None and live is None) or (token.role is TokenRole.AGENT and owner != token.agent_id):
            raise ApiError(404, "call_not_found", "no such call")
    if not controls:
        raise ApiError(503, "controller_unavailable", "this API runs without the call runtimes")
    by = {TokenRole.AGENT: HangupBy.AGENT, TokenRole.SUPERVISOR: HangupBy.SUPERVISOR}.get(token.role, HangupBy.API)
    if live is None or not await live.hangup(call_id, by):
        raise ApiError(409, "call_not_active", "the call has already ended")
    return Reply(HangupAccepted(call_id=call_id, status="ending"), status=202, location=f"/v1/calls/{call_id}")


@routes.get("/v1/calls/{call_id}/dispositions", "listCallDispositions", "A call's dispositions, oldest first",
            roles=ALL_ROLES, parameters=CALL_ID, responses={200: Answer(DispositionList, "the dispositions")},
            errors={404: "`call_not_found`"})
async def list_dispositions(request: web.Request) -> Reply:
    """The dispositions stored for a call (a disposition reaches this list once the outbox has
    delivered it to PostgreSQL, usually within a second)."""
    call = await visible_call(request)
    rows = await request.app[DEPS].store.list_dispositions(call_id=call.call_id)
    return Reply(DispositionList(dispositions=[DispositionBody.model_validate(asdict(row)) for row in rows], next=None))


@routes.get("/v1/calls/{call_id}/disposition-codes", "listCallDispositionCodes",
            "The disposition codes this call may get: its campaign's set, or every code",
            roles=ALL_ROLES, parameters=CALL_ID, responses={200: Answer(DispositionChoices, "the codes")},
            errors={404: "`call_not_found`"})
async def list_disposition_codes(request: web.Request) -> Reply:
    """What the agent's screen offers as buttons; `POST /v1/calls/{call_id}/disposition` refuses
    any other code with 422 `invalid_disposition`."""
    call = await visible_call(request)
    if call.campaign_id is not None:
        campaign = await request.app[DEPS].store.get_campaign(call.campaign_id)
        if campaign is not None and campaign.dispositions:
            return Reply(DispositionChoices(codes=[DispositionCode(code) for code in campaign.dispositions],
                                            campaign_id=call.campaign_id, from_campaign=True))
    return Reply(DispositionChoices(codes=list(DispositionCode), campaign_id=call.campaign_id, from_campaign=False))


@opt_out_routes.post("/v1/opt-outs", "optOut",
                     "Opt a phone number out of every channel, effective for the next gate decision",
                     roles=ALL_ROLES, body=OptOutRequest, idempotent=True,
                     responses={201: Answer(OptOutAccepted, "opted out", headers=LOCATION)},
                     errors={422: "a field is invalid (`field`, and `reason`)",
                             503: "`opt_out_unavailable`: the opt-out could not be stored; retry"})
async def post_opt_out(request: web.Request, body: OptOutRequest) -> Reply:
    """The CRM's record is made durable first, then the number joins the Redis list every gate
    reads (47 CFR 64.1200(d)(3): honoured at once, on every channel)."""
    try:
        result = await request.app[DEPS].opt_outs.record(body.phone, body.source, lead_id=body.lead_id)
    except OptOutError as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field, reason=error.reason) from None
    except InvalidRecord as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    except ApiError:
        raise
    except Exception as error:  # the outbox or Redis failed: the client must retry
        raise ApiError(503, "opt_out_unavailable", f"the opt-out could not be stored; retry ({error!r})") from None
    accepted = OptOutAccepted(phone=result.phone, source=result.source, recorded_at=result.recorded_at,
                              lead_id=result.lead_id)
    return Reply(accepted, status=201, location=f"/v1/opt-outs/{result.phone}")


@opt_out_routes.get("/v1/opt-outs/{phone}", "getOptOut", "Whether a number is opted out, and its records",
                    roles=ALL_ROLES, parameters={"phone": "a US number (E.164 or any format)"},
                    responses={200: Answer(OptOutStatus, "the number's opt-out records")},
                    errors={422: "`phone` is not a US number"})
async def get_opt_out(request: web.Request) -> Reply:
    number = parse_number(request.match_info["phone"]).e164
    if number is None:
        raise ApiError(422, "invalid_field", "phone is not a dialable US number", field="phone")
    deps = request.app[DEPS]
    # The list every gate reads says whether the number is opted out: an opt-out is on it before
    # its 201 (its CRM record arrives through the outbox a moment later), and a texted START
    # takes the number off it while the records stay, as evidence.
    opted_out = await deps.dnc.contains(OPTOUT, parse_number(number))
    rows = await deps.store.list_opt_outs(number)
    return Reply(OptOutStatus(phone=number, opted_out=opted_out,
                              opt_outs=[OptOutRecord.model_validate(asdict(row)) for row in rows]))
