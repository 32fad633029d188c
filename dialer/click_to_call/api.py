"""HTTP route of click-to-call: `POST /v1/calls` (place a call, idempotent with an
`Idempotency-Key`). Hanging up any kind of call is `dialer.api.crm`'s."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from compliance_rules.numbers import parse_number
from crm_bridge.store import TokenRole
from dialer.api.crm import ACCEPTED_CALLS, AcceptedCalls
from dialer.api.http import ALL_ROLES, TOKEN, ApiError, problem, service
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import ComplianceProblem, Id, PhoneText, RequestModel, ResponseModel
from dialer.click_to_call.requests import CallService, DialRequest
from dialer.runtime.errors import ComplianceBlocked
from dialer.runtime.ids import Prefix, new_id

CALLS: web.AppKey[CallService | None] = web.AppKey("click_to_call", CallService)
routes = RouteTable("calls")
LOCATION = {"Location": "the call (`GET /v1/calls/{call_id}`)"}


class CallRequest(RequestModel):
    """Exactly one of `lead_id` or `phone`."""

    lead_id: Id | None = None
    phone: PhoneText | None = Field(default=None, description="an ad-hoc US number, any format")
    agent_id: Id = Field(description="the agent whose phone rings first")
    campaign_id: Id | None = Field(default=None, description="whose caller ID, window and rules apply")


class CallAccepted(ResponseModel):
    call_id: str
    status: str = Field(description="the call's state when the answer was made (e.g. requested, agent_ringing)")


def _calls(request: web.Request) -> CallService:
    return service(request, CALLS, "call controller")


@routes.post("/v1/calls", "placeCall", "Call a lead for an agent (click-to-call): the agent's phone rings first, then "
             "the lead is dialed; every dial passes the compliance gate", roles=ALL_ROLES, body=CallRequest,
             idempotent=True,
             responses={202: Answer(CallAccepted, "the call is under way (when the agent's own phone then cannot be "
                                         "rung, the call ends `failed` with `hangup_cause_text` "
                                         "`softphone_not_registered` or `sip_endpoint_unknown`)",
                                         headers=LOCATION)},
             problems={403: ComplianceProblem},
             errors={403: "`compliance_blocked` (the gate's decision and reasons; nothing was created), or "
                          "`forbidden` (an agent token placing a call for another agent)",
                     409: "the agent cannot take a call now",
                     503: "`trunks_full`: every carrier trunk is at its channel or calls-per-second limit; "
                          "try again in a moment",
                     422: "a field is invalid, or names no known agent, lead or campaign (`field`)"})
async def post_call(request: web.Request, body: CallRequest) -> web.StreamResponse:
    """With an `Idempotency-Key`, a retry of the same request gets the first answer and places
    nothing; the gate is asked before anything is created, and again just before the lead is
    dialed."""
    calls = _calls(request)
    if (body.lead_id is None) == (body.phone is None):
        raise ApiError(422, "invalid_field", "give exactly one of lead_id or phone", field="lead_id")
    phone = body.phone
    if phone is not None:
        phone = parse_number(phone).e164
        if phone is None:
            raise ApiError(422, "invalid_field", f"phone {body.phone!r} is not a dialable US number", field="phone")
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and body.agent_id != token.agent_id:
        raise ApiError(403, "forbidden", "an agent token may place calls only for its own agent", field="agent_id")
    dial = DialRequest(agent_id=body.agent_id, lead_id=body.lead_id, phone=phone, campaign_id=body.campaign_id)
    try:
        placed = await calls.place_call(dial, call_id=new_id(Prefix.CLICK_TO_CALL))
    except ComplianceBlocked as blocked:
        # No call id: no call exists, and none will (issue 10, item 6).
        return problem(request, 403, "compliance_blocked", "the compliance gate blocked this call",
                       decision_id=blocked.decision_id,
                       reasons=[{"code": r.code, "message": r.message, "citation": r.citation} for r in blocked.reasons])
    request.app[ACCEPTED_CALLS].add(placed.call_id)  # following `Location` at once waits for its row
    return Reply(CallAccepted(call_id=placed.call_id, status=placed.status), status=202,
                 location=f"/v1/calls/{placed.call_id}").response()


def add_click_to_call_routes(app: web.Application, calls: CallService | None) -> None:
    """The service the routes use (the routes themselves are in `routes`)."""
    app[CALLS] = calls
    app[ACCEPTED_CALLS] = AcceptedCalls()
