"""The OpenAPI paths of supervisors' monitors (merged into `dialer.api.openapi`)."""

from __future__ import annotations

from typing import Any


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "malformed request", 401: "missing, unknown or revoked token",
            403: "only supervisor and admin tokens may monitor calls",
            404: "no such live call / monitor (`call_not_found`, `monitor_not_found`)",
            409: "`call_not_connected` (no agent and lead bridged yet), `call_not_live` (ended), "
                 "`endpoint_busy` (already monitoring), `monitor_ended`",
            422: "a field is invalid (`field` names it): `mode`, `endpoint` (`unknown_endpoint`: not in Asterisk)",
            503: "the dialer is shutting down or Asterisk does not answer"}
    return {str(s): {"description": text[s],
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_MODE = {"type": "string", "enum": ["listen", "whisper", "barge"],
         "description": "listen: hears agent and lead, heard by nobody; whisper: heard by the agent only; "
                        "barge: joins the call, everyone hears everyone"}
_MONITOR_ID = {"name": "monitor_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CALL_ID = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BRIEF = {"type": "object", "properties": {"monitor_id": {"type": "string"}, "call_id": {"type": "string"},
                                           "mode": _MODE, "state": {"type": "string"}}}
_SESSION = {
    "type": "object",
    "description": "A monitor session. state: dialing (the supervisor's phone rings), connected, ending, ended; "
                   "end_reason: stopped, call_ended, supervisor_no_answer, supervisor_busy, "
                   "supervisor_unreachable, supervisor_hung_up, setup_failed, asterisk_lost, shutdown",
    "properties": {
        "monitor_id": {"type": "string"}, "call_id": {"type": "string"},
        "call_kind": {"type": "string", "enum": ["click_to_call", "campaign"]},
        "agent_id": {"type": ["string", "null"]}, "campaign_id": {"type": ["string", "null"]},
        "endpoint": {"type": "string"}, "state": {"type": "string"}, "mode": _MODE,
        "mode_active": {"type": "boolean", "description": "the mode is wired in Asterisk"},
        "modes": {"type": "array", "items": {"type": "object", "properties": {
            "mode": _MODE, "at": {"type": "string", "format": "date-time"}}}},
        "requested_at": {"type": "string", "format": "date-time"},
        "answered_at": {"type": ["string", "null"], "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "end_reason": {"type": ["string", "null"]}, "end_detail": {"type": ["string", "null"]},
    },
}


def monitor_paths() -> dict[str, Any]:
    return {
        "/v1/calls/{call_id}/monitor": {"post": {
            "summary": "A supervisor monitors a live call: the dialer calls the supervisor's softphone and, when "
                       "it answers, connects it in the mode asked (supervisor and admin tokens)",
            "parameters": [_CALL_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["endpoint", "mode"],
                "properties": {"endpoint": {"type": "string", "description": "the supervisor softphone's PJSIP "
                                                                             "endpoint, e.g. supervisor01"},
                               "mode": _MODE}}}}},
            "responses": {"202": _json(_BRIEF, "the supervisor's phone is being called"),
                          **_errors(400, 401, 403, 404, 409, 422, 503)},
        }},
        "/v1/monitors/{monitor_id}": {
            "get": {
                "summary": "A monitor session (live, or as kept for audit), with why it ended",
                "parameters": [_MONITOR_ID],
                "responses": {"200": _json(_SESSION, "the session"), **_errors(401, 403, 404)},
            },
            "delete": {
                "summary": "End a monitor: the supervisor's leg is hung up; the call goes on",
                "parameters": [_MONITOR_ID],
                "responses": {"202": _json(_BRIEF, "ending"), **_errors(401, 403, 404, 409)},
            },
        },
        "/v1/monitors/{monitor_id}/mode": {"post": {
            "summary": "Switch a monitor's mode on the same supervisor leg (no redial)",
            "parameters": [_MONITOR_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["mode"], "properties": {"mode": _MODE}}}}},
            "responses": {"202": _json(_BRIEF, "switching"), **_errors(400, 401, 403, 404, 409, 422)},
        }},
        "/v1/calls/live": {"get": {
            "summary": "Calls in progress (click-to-call and campaign, inbound too) with their monitors: "
                       "a supervisor's wallboard",
            "responses": {"200": _json({"type": "object", "properties": {"calls": {"type": "array", "items": {
                "type": "object", "properties": {
                    "call_id": {"type": "string"}, "kind": {"type": "string"}, "direction": {"type": "string"},
                    "state": {"type": "string"}, "connected": {"type": "boolean"},
                    "agent_id": {"type": ["string", "null"]}, "lead_number": {"type": "string"},
                    "campaign_id": {"type": ["string", "null"]},
                    "started_at": {"type": "string", "format": "date-time"},
                    "monitors": {"type": "array", "items": {"type": "object"}},
                }}}}}, "the live calls"), **_errors(401, 403, 503)},
        }},
    }
