"""The OpenAPI paths of the campaign endpoints (merged into `dialer.api.openapi`)."""

from __future__ import annotations

from typing import Any


def _ref_error(statuses: tuple[int, ...]) -> dict[str, Any]:
    text = {400: "malformed request", 401: "missing, unknown or revoked token",
            403: "the token's role may not do this", 404: "not logged in / not running",
            409: "the agent's or campaign's state does not allow it", 422: "a field is invalid; `field` names it",
            502: "Asterisk refused the agent's leg", 503: "the controller is not running campaigns"}
    return {str(s): {"description": text[s],
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


def _object(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": bool(required), "content": {"application/json": {"schema": schema}}}


_AGENT = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CAMPAIGN = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "string"}}
_STATE = "the agent's state (type agent_state: ready, reserved, on_call, wrap_up, paused, logged_out)"


def campaign_paths() -> dict[str, Any]:
    return {
        "/v1/agents/{agent_id}/login": {"post": {
            "summary": "Log an agent in to campaigns: its phone is called once and stays connected",
            "parameters": [_AGENT],
            "requestBody": _body({"campaign_ids": {"type": "array", "items": {"type": "string"}}}, ["campaign_ids"]),
            "responses": {"202": _object(_STATE), **_ref_error((400, 401, 403, 409, 422, 502, 503))},
        }},
        "/v1/agents/{agent_id}/logout": {"post": {
            "summary": "Log the agent out (after the current call, if on one)",
            "parameters": [_AGENT],
            "responses": {"202": _object(_STATE), **_ref_error((401, 403, 409, 503))},
        }},
        "/v1/agents/{agent_id}/pause": {"post": {
            "summary": "Pause (now, or when the current call and wrap-up end)",
            "parameters": [_AGENT],
            "requestBody": _body({"reason": {"type": "string", "maxLength": 100}}, ["reason"]),
            "responses": {"200": _object(_STATE), **_ref_error((400, 401, 403, 409, 422, 503))},
        }},
        "/v1/agents/{agent_id}/ready": {"post": {
            "summary": "Take calls again (from paused, or ending wrap-up early)",
            "parameters": [_AGENT],
            "responses": {"200": _object(_STATE), **_ref_error((401, 403, 409, 503))},
        }},
        "/v1/agents/{agent_id}/state": {"get": {
            "summary": "The agent's session state",
            "parameters": [_AGENT],
            "responses": {"200": _object(_STATE), **_ref_error((401, 403, 404, 503))},
        }},
        "/v1/campaigns/{campaign_id}/start": {"post": {
            "summary": "Start dialing the campaign (its dial mode's pacer, its hopper, the gate before each dial)",
            "parameters": [_CAMPAIGN],
            "responses": {"202": _object("the campaign's status"), **_ref_error((401, 403, 404, 409, 503))},
        }},
        "/v1/campaigns/{campaign_id}/stop": {"post": {
            "summary": "Stop dialing; calls with a person on them finish",
            "parameters": [_CAMPAIGN],
            "responses": {"200": _object("the campaign's status"), **_ref_error((401, 403, 404, 503))},
        }},
        "/v1/campaigns/{campaign_id}": {"get": {
            "summary": "A running campaign's status: lines, hopper, agents, outcomes, gate blocks, abandon rate",
            "parameters": [_CAMPAIGN],
            "responses": {"200": _object("the campaign's status"), **_ref_error((401, 403, 404, 503))},
        }},
        "/v1/leads": {"post": {
            "summary": "Create or merge a web lead (by phone or e-mail; enrichment, conflicts flagged for "
            "review); with speed-to-lead on, it is dialed first",
            "requestBody": _body({
                "first_name": {"type": "string"}, "last_name": {"type": "string"},
                "phone": {"type": "string", "description": "a US number, any format"},
                "email": {"type": "string"}, "state": {"type": "string"}, "zip": {"type": "string"},
                "address_line1": {"type": "string"}, "city": {"type": "string"},
                "source": {"type": "string"}, "campaign_id": {"type": "string"},
            }, ["first_name", "phone", "source"]),
            "responses": {"201": _object("a new lead"), "200": _object("merged into an existing lead"),
                          **_ref_error((400, 401, 403, 422, 503))},
        }},
    }
