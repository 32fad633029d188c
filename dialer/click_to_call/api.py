"""HTTP route of click-to-call: `POST /v1/calls` (place a call, idempotent with an
`Idempotency-Key`)."""

from __future__ import annotations

from aiohttp import web

from compliance_rules.numbers import parse_number
from crm_bridge.store import CrmStore, TokenRole
from dialer.api.http import ALL_ROLES, DEPS, TOKEN, ApiError, allow, json_object, optional_text, service
from dialer.click_to_call.requests import CallService, DialRequest
from dialer.runtime.errors import ComplianceBlocked
from dialer.runtime.ids import Prefix, new_id

CALLS: web.AppKey[CallService | None] = web.AppKey("click_to_call", CallService)
IDEMPOTENCY_KEY_MAX = 200


def _calls(request: web.Request) -> CallService:
    return service(request, CALLS, "call controller")


@allow(*ALL_ROLES)
async def post_call(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    calls = _calls(request)
    body = await json_object(request, allowed={"lead_id", "phone", "agent_id", "campaign_id"})
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise ApiError(422, "invalid_field", "agent_id is required (a string)", field="agent_id")
    lead_id, phone, campaign_id = (optional_text(body, name) for name in ("lead_id", "phone", "campaign_id"))
    if (lead_id is None) == (phone is None):
        raise ApiError(422, "invalid_field", "give exactly one of lead_id or phone", field="lead_id")
    if phone is not None:
        parsed = parse_number(phone)
        if parsed.e164 is None:
            raise ApiError(422, "invalid_field", f"phone {phone!r} is not a dialable US number", field="phone")
        phone = parsed.e164
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and agent_id != token.agent_id:
        raise ApiError(403, "forbidden", "an agent token may place calls only for its own agent", field="agent_id")
    key = request.headers.get("Idempotency-Key")
    call_id = new_id(Prefix.CLICK_TO_CALL)
    if key is not None:
        if not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX:
            raise ApiError(400, "invalid_header", "Idempotency-Key must be 1-200 characters", field="Idempotency-Key")
        bound = await deps.store.claim_idempotency_key(f"{token.token_id}:{key}", call_id)
        if bound != call_id:
            # The same request again: answer with the first call, place nothing.
            status = calls.call_status(bound) or await _stored_status(deps.store, bound)
            return web.json_response({"call_id": bound, "status": status, "replayed": True}, status=202)
    dial = DialRequest(agent_id=agent_id, lead_id=lead_id, phone=phone, campaign_id=campaign_id)
    try:
        placed = await calls.place_call(dial, call_id=call_id)
    except ComplianceBlocked as blocked:
        return web.json_response(
            {
                "error": "compliance_blocked",
                "message": "the compliance gate blocked this call",
                "decision_id": blocked.decision_id,
                "reasons": [{"code": r.code, "message": r.message, "citation": r.citation} for r in blocked.reasons],
                "call_id": call_id,
            },
            status=403,
        )
    return web.json_response({"call_id": placed.call_id, "status": placed.status}, status=202)


async def _stored_status(store: CrmStore, call_id: str) -> str:
    call = await store.get_call(call_id)
    if call is None:
        return "requested"
    return "ended" if call.ended_at is not None else "in_progress"


def add_click_to_call_routes(app: web.Application, calls: CallService | None) -> None:
    app[CALLS] = calls
    app.router.add_post("/v1/calls", post_call)
