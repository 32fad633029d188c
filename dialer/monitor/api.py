"""HTTP endpoints of supervisors' monitors (supervisor and admin tokens only). Added to the API
app by `dialer.app.build_app`:

- `POST /v1/calls/{call_id}/monitor` `{"endpoint": "supervisor01", "mode": "listen"}` -> 202
- `POST /v1/monitors/{monitor_id}/mode` `{"mode": "whisper"}` -> 202 (same supervisor leg)
- `DELETE /v1/monitors/{monitor_id}` -> 202 (ends it)
- `GET /v1/monitors/{monitor_id}` -> the session (live, or as the CRM keeps it)
- `GET /v1/calls/live` -> the calls in progress and their monitors (a wallboard)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError, allow, json_object, service
from dialer.monitor.record import MonitorMode, MonitorRecord
from dialer.monitor.runtime import MonitorRuntime
from dialer.runtime.errors import Refused

STAFF = (TokenRole.SUPERVISOR, TokenRole.ADMIN)
MODES = ", ".join(mode.value for mode in MonitorMode)


MONITORS: web.AppKey[MonitorRuntime | None] = web.AppKey("monitors", MonitorRuntime)


def _service(request: web.Request) -> MonitorRuntime:
    return service(request, MONITORS, "call runtimes")


def _mode(body: dict[str, Any]) -> MonitorMode:
    value = body.get("mode")
    try:
        return MonitorMode(str(value) if isinstance(value, str) else "")
    except ValueError:
        raise ApiError(422, "invalid_field", f"mode must be one of {MODES}", field="mode") from None


def _brief(record: MonitorRecord) -> dict[str, object]:
    return {"monitor_id": record.monitor_id, "call_id": record.call_id, "mode": record.mode.value,
            "state": record.state.value}


@allow(*STAFF)
async def post_monitor(request: web.Request) -> web.Response:
    service = _service(request)
    body = await json_object(request, allowed={"endpoint", "mode"})
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ApiError(422, "invalid_field", "endpoint is required: the supervisor's PJSIP endpoint name",
                       field="endpoint")
    mode = _mode(body)
    call_id = request.match_info["call_id"]
    try:
        record = await service.start(call_id, endpoint, mode, requested_by=request[TOKEN].token_id)
    except Refused as error:
        if error.error == "call_not_found" and await request.app[DEPS].store.get_call(call_id) is not None:
            raise ApiError(409, "call_not_live", "the call has ended", field="call_id") from None
        raise
    return web.json_response(_brief(record), status=202)


@allow(*STAFF)
async def post_mode(request: web.Request) -> web.Response:
    service = _service(request)
    mode = _mode(await json_object(request, allowed={"mode"}))
    record = service.change_mode(request.match_info["monitor_id"], mode)
    return web.json_response({**_brief(record), "mode": mode.value}, status=202)


@allow(*STAFF)
async def delete_monitor(request: web.Request) -> web.Response:
    record = _service(request).stop(request.match_info["monitor_id"])
    return web.json_response({**_brief(record), "state": "ending"}, status=202)


def _stored_json(row: dict[str, object]) -> dict[str, object]:
    def stamp(value: object) -> object:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return value

    return {
        "monitor_id": row["monitor_id"], "call_id": row["call_id"], "call_kind": row["call_kind"],
        "agent_id": row["agent_id"], "campaign_id": row["campaign_id"], "endpoint": row["supervisor_endpoint"],
        "state": row["state"], "mode": row["mode"], "mode_active": False, "modes": row["modes"],
        "requested_at": stamp(row["requested_at"]), "answered_at": stamp(row["answered_at"]),
        "ended_at": stamp(row["ended_at"]), "end_reason": row["end_reason"], "end_detail": row["end_detail"],
    }


@allow(*STAFF)
async def get_monitor(request: web.Request) -> web.Response:
    monitor_id = request.match_info["monitor_id"]
    record = _service(request).get(monitor_id)
    if record is not None:
        return web.json_response(record.to_json())
    row = await request.app[DEPS].store.get_monitor_session(monitor_id)
    if row is None:
        raise ApiError(404, "monitor_not_found", f"no monitor {monitor_id!r}")
    return web.json_response(_stored_json(row))


@allow(*STAFF)
async def live_calls(request: web.Request) -> web.Response:
    service = _service(request)
    calls = []
    for call in service.live_calls():
        monitors = [
            {"monitor_id": r.monitor_id, "endpoint": r.endpoint, "mode": r.mode.value, "state": r.state.value,
             "mode_active": r.mode_active}
            for r in service.monitors_of(call.call_id)
        ]
        calls.append({**call.to_json(), "monitors": monitors})
    return web.json_response({"calls": calls})


def add_monitor_routes(app: web.Application, monitors: MonitorRuntime | None) -> None:
    """Call before `/v1/calls/{call_id}` is added: `/v1/calls/live` must match first."""
    app[MONITORS] = monitors
    app.router.add_get("/v1/calls/live", live_calls)
    app.router.add_post("/v1/calls/{call_id}/monitor", post_monitor)
    app.router.add_get("/v1/monitors/{monitor_id}", get_monitor)
    app.router.add_delete("/v1/monitors/{monitor_id}", delete_monitor)
    app.router.add_post("/v1/monitors/{monitor_id}/mode", post_mode)
