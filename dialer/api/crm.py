"""The CRM's routes that belong to no one kind of call: the call log, dispositions, opt-outs,
agents' event streams, health and metrics."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from typing import Any

from aiohttp import web

from compliance_rules.optout import OptOutError
from crm_bridge.dispositions import DispositionError, wrap_up_records
from crm_bridge.kinds import RecordKind
from crm_bridge.records import InvalidRecord
from crm_bridge.store import Call, TokenRole
from dialer.api.http import (
    ALL_ROLES,
    CALL_CONTROLS,
    DEPS,
    TOKEN,
    WRAP_UPS,
    ApiError,
    allow,
    json_object,
    json_value,
    limit_parameter,
    only_parameters,
    optional_text,
    timestamp,
)
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.live import HangupBy


def call_json(call: Call) -> dict[str, object]:
    return {field.name: json_value(getattr(call, field.name)) for field in fields(call)}


async def visible_call(request: web.Request) -> Call:
    """The call named in the path, if this token may see it (agents: only their own calls)."""
    call = await request.app[DEPS].store.get_call(request.match_info["call_id"])
    token = request[TOKEN]
    if call is None or (token.role is TokenRole.AGENT and call.agent_id != token.agent_id):
        # An agent is not told whether another agent's call exists.
        raise ApiError(404, "call_not_found", "no such call")
    return call


async def health(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[DEPS].metrics.render(), content_type="text/plain", headers={"X-Content-Version": "0.0.4"}
    )


@allow(*ALL_ROLES)
async def get_call(request: web.Request) -> web.Response:
    return web.json_response(call_json(await visible_call(request)))


@allow(*ALL_ROLES)
async def list_calls(request: web.Request) -> web.Response:
    only_parameters(request, "lead_id", "agent_id", "campaign_id", "since", "limit")
    query = request.query
    since = timestamp(query.get("since"), "since")
    limit = limit_parameter(request)
    agent_id = query.get("agent_id")
    token = request[TOKEN]
    if token.role is TokenRole.AGENT:
        if agent_id not in (None, token.agent_id):
            raise ApiError(403, "forbidden", "an agent token may list only its own calls", field="agent_id")
        agent_id = token.agent_id
    calls = await request.app[DEPS].store.list_calls(
        lead_id=query.get("lead_id"), agent_id=agent_id, campaign_id=query.get("campaign_id"), since=since,
        limit=limit,
    )
    return web.json_response({"calls": [call_json(call) for call in calls]})


@allow(*ALL_ROLES)
async def post_disposition(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    call = await visible_call(request)
    body = await json_object(request)
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise ApiError(422, "invalid_field", "code is required", field="code")
    callback_at = timestamp(body.get("callback_at"), "callback_at")
    notes = optional_text(body, "notes")
    disposition_id = new_id(Prefix.DISPOSITION)
    try:
        records = wrap_up_records(
            disposition_id=disposition_id, code=code, disposed_at=deps.clock(), call_id=call.call_id,
            lead_id=call.lead_id, agent_id=call.agent_id, campaign_id=call.campaign_id, phone=call.lead_number,
            notes=notes, callback_at=callback_at,
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
    return web.json_response({"disposition_id": disposition_id, "call_id": call.call_id, "code": code}, status=202)


@allow(*ALL_ROLES)
async def post_hangup(request: web.Request) -> web.Response:
    """End a live call, whichever kind it is (click-to-call or campaign); agents only their own."""
    controls = request.app.get(CALL_CONTROLS) or []
    token = request[TOKEN]
    call_id = request.match_info["call_id"]
    call = await request.app[DEPS].store.get_call(call_id)
    live = next((control for control in controls if control.call_status(call_id) is not None), None)
    owner = call.agent_id if call is not None else None
    if (call is None and live is None) or (token.role is TokenRole.AGENT and owner != token.agent_id):
        raise ApiError(404, "call_not_found", "no such call")
    if not controls:
        raise ApiError(503, "controller_unavailable", "this API runs without the call runtimes")
    by = {TokenRole.AGENT: HangupBy.AGENT, TokenRole.SUPERVISOR: HangupBy.SUPERVISOR}.get(token.role, HangupBy.API)
    if live is None or not await live.hangup(call_id, by):
        raise ApiError(409, "call_not_active", "the call has already ended")
    return web.json_response({"call_id": call_id, "status": "ending"}, status=202)


@allow(*ALL_ROLES)
async def post_opt_out(request: web.Request) -> web.Response:
    """`POST /v1/opt-outs {"phone", "source", "lead_id"}`: effective for the very next decision."""
    body = await json_object(request)
    lead_id = body.get("lead_id")
    if lead_id is not None and not isinstance(lead_id, str):
        raise ApiError(422, "invalid_field", "lead_id must be a string", field="lead_id", reason="invalid_type")
    try:
        result = await request.app[DEPS].opt_outs.record(body.get("phone"), body.get("source"), lead_id=lead_id)
    except OptOutError as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field, reason=error.reason) from None
    except InvalidRecord as error:  # refused before anything was written (the CRM record comes first)
        raise ApiError(422, "invalid_field", str(error), field=error.field or "body") from None
    except Exception as error:  # the outbox or Redis failed: the client must retry
        raise ApiError(503, "opt_out_unavailable", f"the opt-out could not be stored; retry ({error!r})") from None
    return web.json_response(result.to_json(), status=201)


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
        receiver: asyncio.Future[Any] = asyncio.ensure_future(socket.receive())
        try:
            while not socket.closed:
                getter: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    getter.cancel()
                    break
                await socket.send_json(getter.result())
        finally:
            receiver.cancel()
    await socket.close()
    return socket


def add_public_routes(app: web.Application) -> None:
    app.router.add_get("/v1/health", health)
    app.router.add_get("/metrics", metrics)


def add_crm_routes(app: web.Application) -> None:
    """The call log (`GET /v1/calls`, `/v1/calls/{call_id}`), dispositions, opt-outs and agents'
    event streams. `GET /v1/calls/{call_id}` must come after fixed paths such as `/v1/calls/live`."""
    app.router.add_post("/v1/opt-outs", post_opt_out)
    app.router.add_get("/v1/calls", list_calls)


def add_call_routes(app: web.Application) -> None:
    app.router.add_get("/v1/calls/{call_id}", get_call)
    app.router.add_post("/v1/calls/{call_id}/disposition", post_disposition)
    app.router.add_post("/v1/calls/{call_id}/hangup", post_hangup)
    app.router.add_get("/v1/agents/{agent_id}/events", agent_events)
