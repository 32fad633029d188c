"""The dialer's HTTP API (aiohttp): bearer-token auth with roles, JSON errors, the CRM endpoints.

Every error is JSON `{"error": CODE, "message": ...}` (plus `field` for a bad field), with a
4xx status for the caller's mistakes and 503 when a dependency (PostgreSQL, Redis) is down;
never a traceback. The OpenAPI document at `/v1/openapi.json` lists exactly these routes
(a test keeps them in step).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

import structlog
from aiohttp import web

from compliance_rules.http import make_opt_out_handler
from compliance_rules.optout import OptOut
from compliance_rules.store import DncStore
from crm_bridge.dispositions import DispositionError, wrap_up_records
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.records import InvalidRecord
from crm_bridge.store import ApiToken, Call, CrmStore, TokenRole
from dialer.api.openapi import openapi_document
from dialer.click_to_call.inputs import HangupBy
from dialer.metrics import Metrics
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.errors import CallRefused, CallService, ComplianceBlocked, DialRequest

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALL_ROLES = frozenset(TokenRole)
STAFF_ROLES = frozenset({TokenRole.CRM, TokenRole.SUPERVISOR, TokenRole.ADMIN})


class RecordWriter(Protocol):
    """Where CRM records go: the durable outbox (`crm_bridge.outbox.Outbox`)."""

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]: ...


@dataclass(frozen=True)
class ApiDependencies:
    store: CrmStore
    records: RecordWriter
    dnc: DncStore
    calls: CallService | None = None
    agent_events: AgentEventHub = field(default_factory=AgentEventHub)
    campaigns: Any = None  # dialer.campaign.runtime.CampaignRuntime (agent sessions, campaigns)
    monitors: Any = None  # dialer.monitor.runtime.MonitorService (supervisors' listen/whisper/barge)
    recordings: Any = None  # recordings.api.RecordingReader (the archive the audio is opened from)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class ApiError(Exception):
    """A request we refuse, with its status and machine-readable code."""

    def __init__(self, status: int, error: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "message": str(self), **self.extra}, status=self.status)


DEPS: web.AppKey[ApiDependencies] = web.AppKey("deps", ApiDependencies)
TOKEN: web.RequestKey[ApiToken] = web.RequestKey("token", ApiToken)
# /metrics carries aggregates only (no PHI), for a Prometheus server on the same network.
_PUBLIC_PATHS = frozenset({"/v1/health", "/v1/openapi.json", "/metrics"})
_ROLES: dict[Handler, frozenset[TokenRole]] = {}


def allow(*roles: TokenRole) -> Callable[[Handler], Handler]:
    """Which token roles may call a handler (agents are further limited to their own calls)."""

    def mark(handler: Handler) -> Handler:
        _ROLES[handler] = frozenset(roles)
        return handler

    return mark


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(error.status, "http_error")
        return web.json_response({"error": code, "message": error.reason}, status=error.status)
    except DatabaseUnavailable as error:
        return ApiError(503, "database_unavailable", f"the CRM database does not answer: {error}").response()
    except Exception:
        log.exception("api_internal_error", path=request.path, method=request.method)
        return web.json_response({"error": "internal_error", "message": "internal error; logged"}, status=500)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in _PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)  # public, or no such route: 404/405 come out as JSON
    header = request.headers.get("Authorization", "")
    if not header and request.headers.get("Upgrade", "").lower() == "websocket" and "access_token" in request.query:
        # Browsers cannot set headers on a WebSocket; the console passes its token in the query.
        header = f"Bearer {request.query['access_token']}"
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer TOKEN'")
    token = await request.app[DEPS].store.authenticate(secret.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    roles = _ROLES.get(_route_handler(request), frozenset())
    if token.role not in roles:
        raise ApiError(403, "forbidden", f"a {token.role.value} token may not call this endpoint")
    request[TOKEN] = token
    return await handler(request)


def _route_handler(request: web.Request) -> Handler:
    return request.match_info.route.handler


# ---- helpers -------------------------------------------------------------------------------
def json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    return value


def call_json(call: Call) -> dict[str, object]:
    return {field.name: json_value(getattr(call, field.name)) for field in fields(call)}


async def json_object(
    request: web.Request, *, allowed: Collection[str] | None = None, optional: bool = False
) -> dict[str, Any]:
    """The request's JSON object body (400 otherwise); `allowed` refuses other fields (422 naming
    one); `optional` takes a missing body as `{}`."""
    if optional and not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    return body


def _timestamp(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{field} must be an ISO-8601 timestamp", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_field", f"{field} must be an ISO-8601 timestamp", field=field) from None
    if parsed.tzinfo is None:
        raise ApiError(422, "invalid_field", f"{field} needs a time zone (e.g. Z)", field=field)
    return parsed


def _optional_text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{field} must be a string", field=field)
    return value


async def _visible_call(request: web.Request) -> Call:
    """The call named in the path, if this token may see it (agents: only their own calls)."""
    call = await request.app[DEPS].store.get_call(request.match_info["call_id"])
    token = request[TOKEN]
    if call is None or (token.role is TokenRole.AGENT and call.agent_id != token.agent_id):
        # An agent is not told whether another agent's call exists.
        raise ApiError(404, "call_not_found", "no such call")
    return call


# ---- handlers ------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[DEPS].metrics.render(), content_type="text/plain", headers={"X-Content-Version": "0.0.4"}
    )


async def openapi(request: web.Request) -> web.Response:
    del request
    return web.json_response(openapi_document())


@allow(*ALL_ROLES)
async def get_call(request: web.Request) -> web.Response:
    return web.json_response(call_json(await _visible_call(request)))


@allow(*ALL_ROLES)
async def list_calls(request: web.Request) -> web.Response:
    query = request.query
    unknown = set(query) - {"lead_id", "agent_id", "campaign_id", "since", "limit"}
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(400, "unknown_parameter", f"unknown query parameter {name!r}", field=name)
    since = _timestamp(query.get("since"), "since")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise ApiError(422, "invalid_field", "limit must be a whole number", field="limit") from None
    if not 1 <= limit <= 1000:
        raise ApiError(422, "invalid_field", "limit must be between 1 and 1000", field="limit")
    agent_id = query.get("agent_id")
    token = request[TOKEN]
    if token.role is TokenRole.AGENT:
        if agent_id not in (None, token.agent_id):
            raise ApiError(403, "forbidden", "an agent token may list only its own calls", field="agent_id")
        agent_id = token.agent_id
    calls = await request.app[DEPS].store.list_calls(
        lead_id=query.get("lead_id"),
        agent_id=agent_id,
        campaign_id=query.get("campaign_id"),
        since=since,
        limit=limit,
    )
    return web.json_response({"calls": [call_json(call) for call in calls]})


@allow(*ALL_ROLES)
async def post_disposition(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    call = await _visible_call(request)
    body = await json_object(request)
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise ApiError(422, "invalid_field", "code is required", field="code")
    callback_at = _timestamp(body.get("callback_at"), "callback_at")
    notes = _optional_text(body, "notes")
    disposition_id = f"dsp_{uuid.uuid4().hex}"
    try:
        records = wrap_up_records(
            disposition_id=disposition_id,
            code=code,
            disposed_at=deps.clock(),
            call_id=call.call_id,
            lead_id=call.lead_id,
            agent_id=call.agent_id,
            campaign_id=call.campaign_id,
            phone=call.lead_number,
            notes=notes,
            callback_at=callback_at,
        )
    except DispositionError as error:
        raise ApiError(422, "invalid_disposition", str(error), field="code") from None
    try:
        await deps.records.put_many(records)
    except InvalidRecord as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    if any(kind == "opt_out" for kind, _ in records) and call.lead_number:
        # The durable opt-out above reaches PostgreSQL through the outbox; the gate reads Redis,
        # so put the number on the opt-out list there too, effective for the very next decision.
        from compliance_rules.optout import opt_out

        await opt_out(deps.dnc, call.lead_number, "disposition", lead_id=call.lead_id)
    return web.json_response({"disposition_id": disposition_id, "call_id": call.call_id, "code": code}, status=202)


IDEMPOTENCY_KEY_MAX = 200


def _call_service(request: web.Request) -> CallService:
    calls = request.app[DEPS].calls
    if calls is None:
        raise ApiError(503, "controller_unavailable", "this API runs without the call controller")
    return calls


@allow(*ALL_ROLES)
async def post_call(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    calls = _call_service(request)
    body = await json_object(request)
    unknown = set(body) - {"lead_id", "phone", "agent_id", "campaign_id"}
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(422, "unknown_field", f"unknown field {name!r}", field=name)
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise ApiError(422, "invalid_field", "agent_id is required (a string)", field="agent_id")
    lead_id, phone, campaign_id = (_optional_text(body, name) for name in ("lead_id", "phone", "campaign_id"))
    if (lead_id is None) == (phone is None):
        raise ApiError(422, "invalid_field", "give exactly one of lead_id or phone", field="lead_id")
    if phone is not None:
        from compliance_rules.numbers import parse_number

        parsed = parse_number(phone)
        if parsed.e164 is None:
            raise ApiError(422, "invalid_field", f"phone {phone!r} is not a dialable US number", field="phone")
        phone = parsed.e164
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and agent_id != token.agent_id:
        raise ApiError(403, "forbidden", "an agent token may place calls only for its own agent", field="agent_id")
    key = request.headers.get("Idempotency-Key")
    call_id = f"call-{uuid.uuid4().hex}"
    if key is not None:
        if not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX:
            raise ApiError(400, "invalid_header", "Idempotency-Key must be 1-200 characters", field="Idempotency-Key")
        bound = await deps.store.claim_idempotency_key(f"{token.token_id}:{key}", call_id)
        if bound != call_id:
            # The same request again: answer with the first call, place nothing.
            status = calls.call_status(bound) or await _stored_status(deps.store, bound)
            return web.json_response({"call_id": bound, "status": status, "replayed": True}, status=202)
    request_ = DialRequest(agent_id=agent_id, lead_id=lead_id, phone=phone, campaign_id=campaign_id)
    try:
        placed = await calls.place_call(request_, call_id=call_id)
    except ComplianceBlocked as blocked:
        return web.json_response(
            {
                "error": "compliance_blocked",
                "message": "the compliance gate blocked this call",
                "decision_id": blocked.decision_id,
                "reasons": [
                    {"code": r.code, "message": r.message, "citation": r.citation} for r in blocked.reasons
                ],
                "call_id": call_id,
            },
            status=403,
        )
    except CallRefused as refused:
        extra = {"field": refused.field} if refused.field else {}
        raise ApiError(refused.status, refused.error, str(refused), **extra) from None
    return web.json_response({"call_id": placed.call_id, "status": placed.status}, status=202)


async def _stored_status(store: CrmStore, call_id: str) -> str:
    call = await store.get_call(call_id)
    if call is None:
        return "requested"
    return "ended" if call.ended_at is not None else "in_progress"


@allow(*ALL_ROLES)
async def post_hangup(request: web.Request) -> web.Response:
    calls = _call_service(request)
    token = request[TOKEN]
    call_id = request.match_info["call_id"]
    call = await request.app[DEPS].store.get_call(call_id)
    live = calls.call_status(call_id)
    owner = call.agent_id if call is not None else None
    if (call is None and live is None) or (token.role is TokenRole.AGENT and owner != token.agent_id):
        raise ApiError(404, "call_not_found", "no such call")
    by = {TokenRole.AGENT: HangupBy.AGENT, TokenRole.SUPERVISOR: HangupBy.SUPERVISOR}.get(token.role, HangupBy.API)
    if not await calls.hangup(call_id, by):
        raise ApiError(409, "call_not_active", "the call has already ended")
    return web.json_response({"call_id": call_id, "status": "ending"}, status=202)


@allow(*ALL_ROLES)
async def agent_events(request: web.Request) -> web.StreamResponse:
    agent_id = request.match_info["agent_id"]
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and token.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent may follow only its own events")
    if token.role is TokenRole.CRM:
        raise ApiError(403, "forbidden", "agent event streams are for agents and supervisors")
    socket = web.WebSocketResponse(heartbeat=10.0)
    if not socket.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "connect with a WebSocket upgrade")
    await socket.prepare(request)
    hub = request.app[DEPS].agent_events
    async with hub.subscribe(agent_id) as queue:
        await socket.send_json({"type": "subscribed", "agent_id": agent_id})
        receiver = asyncio.ensure_future(socket.receive())
        try:
            while not socket.closed:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    getter.cancel()
                    break
                await socket.send_json(getter.result())
        finally:
            receiver.cancel()
    await socket.close()
    return socket


class _OutboxOptOutRecorder:
    """Writes each API opt-out to the CRM's opt_outs table through the outbox."""

    def __init__(self, records: RecordWriter) -> None:
        self._records = records

    async def record_opt_out(self, opt_out: OptOut) -> None:
        await self._records.put_many(
            [
                (
                    "opt_out",
                    {
                        "opt_out_id": f"opt_{uuid.uuid4().hex}",
                        "phone": opt_out.phone,
                        "source": opt_out.source.value,
                        "lead_id": opt_out.lead_id,
                        "created_at": opt_out.recorded_at,
                    },
                )
            ]
        )


def build_app(deps: ApiDependencies) -> web.Application:
    app = web.Application(middlewares=[errors_as_json, bearer_auth], client_max_size=256 * 1024)
    app[DEPS] = deps
    opt_outs = allow(*ALL_ROLES)(make_opt_out_handler(deps.dnc, _OutboxOptOutRecorder(deps.records)))
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/opt-outs", opt_outs)
    app.router.add_post("/v1/calls", post_call)
    app.router.add_get("/v1/calls", list_calls)
    from dialer.monitor.api import add_monitor_routes  # here: it builds on this module

    add_monitor_routes(app)  # before /v1/calls/{call_id}: /v1/calls/live is not a call id
    app.router.add_get("/v1/calls/{call_id}", get_call)
    app.router.add_post("/v1/calls/{call_id}/disposition", post_disposition)
    app.router.add_post("/v1/calls/{call_id}/hangup", post_hangup)
    app.router.add_get("/v1/agents/{agent_id}/events", agent_events)
    from dialer.campaign.api import add_campaign_routes  # here: it builds on this module

    add_campaign_routes(app)
    from recordings.api import add_recording_routes  # here: it builds on this module

    add_recording_routes(app, deps.recordings)
    return app
