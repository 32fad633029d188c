"""HTTP endpoints of supervisors' monitors (supervisor and admin tokens only). Added to the API
app by `dialer.app.build_app`:

- `POST /v1/calls/{call_id}/monitor` `{"endpoint": "supervisor01", "mode": "listen"}` -> 202
- `POST /v1/monitors/{monitor_id}/mode` `{"mode": "whisper"}` -> 202 (same supervisor leg)
- `DELETE /v1/monitors/{monitor_id}` -> 202 (ends it)
- `GET /v1/monitors/{monitor_id}` -> the session (live, or as the CRM keeps it)
- `GET /v1/calls/live` -> the calls in progress and their monitors (a wallboard)
"""

from __future__ import annotations

from aiohttp import web

from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError, service
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.monitor.openapi import (
    LiveCallBody,
    LiveCalls,
    ModeRequest,
    MonitorBrief,
    MonitorRequest,
    MonitorSessionBody,
)
from dialer.monitor.record import MonitorRecord
from dialer.monitor.runtime import MonitorRuntime
from dialer.runtime.errors import Refused

STAFF = (TokenRole.SUPERVISOR, TokenRole.ADMIN)
MONITOR_ID = {"monitor_id": "the monitor session's id"}
MONITOR_URL = {"Location": "the session (`GET /v1/monitors/{monitor_id}`)"}
NOT_RUNNING = "the dialer runs without call runtimes, is shutting down, or Asterisk does not answer"

MONITORS: web.AppKey[MonitorRuntime | None] = web.AppKey("monitors", MonitorRuntime)
routes = RouteTable("monitoring")


def _service(request: web.Request) -> MonitorRuntime:
    return service(request, MONITORS, "call runtimes")


def _brief(record: MonitorRecord, **changes: str) -> Reply:
    body = MonitorBrief.model_validate({"monitor_id": record.monitor_id, "call_id": record.call_id,
                                        "mode": record.mode.value, "state": record.state.value, **changes})
    return Reply(body, status=202, location=f"/v1/monitors/{record.monitor_id}")


@routes.post("/v1/calls/{call_id}/monitor", "monitorCall",
             "A supervisor monitors a live call: the dialer calls the supervisor's softphone and, when it answers, "
             "connects it in the mode asked (supervisor and admin tokens)", roles=STAFF,
             parameters={"call_id": "a live call's id"}, body=MonitorRequest,
             responses={202: Answer(MonitorBrief, "the supervisor's phone is being called", headers=MONITOR_URL)},
             errors={403: "only supervisor and admin tokens may monitor calls", 404: "`call_not_found`",
                     409: "`call_not_connected` (no agent and lead bridged yet), `call_not_live` (ended), "
                          "`endpoint_busy` (already monitoring)",
                     422: "a field is invalid (`field`): `mode`, `endpoint` (not a supervisor's endpoint)",
                     503: NOT_RUNNING})
async def post_monitor(request: web.Request, body: MonitorRequest) -> Reply:
    runtime = _service(request)
    call_id = request.match_info["call_id"]
    if not body.endpoint.strip():
        raise ApiError(422, "invalid_field", "endpoint is required: the supervisor's PJSIP endpoint name",
                       field="endpoint")
    try:
        record = await runtime.start(call_id, body.endpoint, body.mode, requested_by=request[TOKEN].token_id)
    except Refused as error:
        if error.error == "call_not_found" and await request.app[DEPS].store.get_call(call_id) is not None:
            raise ApiError(409, "call_not_live", "the call has ended", field="call_id") from None
        raise
    return _brief(record)


@routes.post("/v1/monitors/{monitor_id}/mode", "changeMonitorMode",
             "Switch a monitor's mode on the same supervisor leg (no redial)", roles=STAFF, parameters=MONITOR_ID,
             body=ModeRequest, responses={202: Answer(MonitorBrief, "switching", headers=MONITOR_URL)},
             errors={404: "`monitor_not_found`", 409: "`monitor_ended`", 503: NOT_RUNNING})
async def post_mode(request: web.Request, body: ModeRequest) -> Reply:
    record = _service(request).change_mode(request.match_info["monitor_id"], body.mode)
    return _brief(record, mode=body.mode.value)


@routes.delete("/v1/monitors/{monitor_id}", "stopMonitor",
               "End a monitor: the supervisor's leg is hung up; the call goes on", roles=STAFF, parameters=MONITOR_ID,
               responses={202: Answer(MonitorBrief, "ending", headers=MONITOR_URL)},
               errors={404: "`monitor_not_found`", 409: "`monitor_ended`", 503: NOT_RUNNING})
async def delete_monitor(request: web.Request) -> Reply:
    return _brief(_service(request).stop(request.match_info["monitor_id"]), state="ending")


@routes.get("/v1/monitors/{monitor_id}", "getMonitor", "A monitor session (live, or as kept for audit), with why "
            "it ended", roles=STAFF, parameters=MONITOR_ID,
            responses={200: Answer(MonitorSessionBody, "the session")},
            errors={404: "`monitor_not_found`", 503: NOT_RUNNING})
async def get_monitor(request: web.Request) -> Reply:
    monitor_id = request.match_info["monitor_id"]
    record = _service(request).get(monitor_id)
    if record is not None:
        return Reply(MonitorSessionBody.of(record))
    row = await request.app[DEPS].store.get_monitor_session(monitor_id)
    if row is None:
        raise ApiError(404, "monitor_not_found", f"no monitor {monitor_id!r}")
    return Reply(MonitorSessionBody.stored(row))


@routes.get("/v1/calls/live", "listLiveCalls",
            "Calls in progress (click-to-call and campaign, inbound too) with their monitors: a supervisor's "
            "wallboard (`GET /v1/events` pushes the same as it changes)", roles=STAFF,
            responses={200: Answer(LiveCalls, "the live calls")}, errors={503: NOT_RUNNING})
async def live_calls(request: web.Request) -> Reply:
    runtime = _service(request)
    return Reply(LiveCalls(calls=[LiveCallBody.of(call, runtime.monitors_of(call.call_id))
                                  for call in runtime.live_calls()]))


def add_monitor_routes(app: web.Application, monitors: MonitorRuntime | None) -> None:
    """The runtime the routes use (the routes themselves are in `routes`)."""
    app[MONITORS] = monitors
