"""The OpenAPI 3.1 document of the HTTP API, served at /v1/openapi.json (a test keeps it true):
the document and the paths of the routes in `dialer.api`; `dialer.app` adds each slice's."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "malformed request",
        401: "missing, unknown or revoked token",
        403: "the token's role may not do this",
        404: "no such resource (or not visible to this token)",
        409: "the resource is not in a state that allows this (e.g. the agent is on a call)",
        422: "a field is invalid; `field` names it",
        503: "a dependency (PostgreSQL, Redis) is down; retry",
    }
    return {
        str(status): {"description": text[status], "content": {"application/json": {"schema": _ERROR}}}
        for status in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_CALL_ID = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_document(*slice_paths: dict[str, Any]) -> dict[str, Any]:
    """The document, with the paths of the slices' routes added to those of `dialer.api`."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialer-engine API",
            "version": "0.1.0",
            "description": "Calls, dispositions and opt-outs for the CRM, agents and supervisors. "
            "Authenticate with `Authorization: Bearer TOKEN` (tokens: `dialer token create`).",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "stable machine-readable code"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "the offending field, when one is"},
                        "reason": {"type": "string"},
                    },
                },
                "Call": {
                    "type": "object",
                    "description": "One row of the CRM calls table.",
                    "properties": {
                        name: {"type": kind}
                        for name, kind in {
                            "call_id": "string",
                            "version": "integer",
                            "direction": "string",
                            "lead_id": ["string", "null"],
                            "agent_id": ["string", "null"],
                            "campaign_id": ["string", "null"],
                            "lead_number": ["string", "null"],
                            "agent_endpoint": ["string", "null"],
                            "caller_id": ["string", "null"],
                            "requested_at": "string",
                            "agent_answered_at": ["string", "null"],
                            "lead_ringing_at": ["string", "null"],
                            "lead_answered_at": ["string", "null"],
                            "bridged_at": ["string", "null"],
                            "ended_at": ["string", "null"],
                            "outcome": ["string", "null"],
                            "hangup_cause": ["integer", "null"],
                            "hangup_cause_text": ["string", "null"],
                            "sip_code": ["integer", "null"],
                            "ring_seconds": ["number", "null"],
                            "talk_seconds": ["number", "null"],
                            "total_seconds": ["number", "null"],
                            "recording_id": ["string", "null"],
                            "compliance_decision_id": ["string", "null"],
                            "amd_result": ["string", "null"],
                            "amd_cause": ["string", "null"],
                            "greeting_ended_at": ["string", "null"],
                            "safe_harbor_played": "boolean",
                            "abandoned": "boolean",
                            "updated_at": "string",
                        }.items()
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            **{path: item for paths in slice_paths for path, item in paths.items()},
            "/v1/health": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "the API answers")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (aggregates only: calls, gate decisions, outbox, campaigns)",
                    "security": [],
                    "responses": {
                        "200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
                }
            },
            "/v1/opt-outs": {
                "post": {
                    "summary": "Opt a phone number out of every channel, effective for the next gate decision",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["phone", "source"],
                                    "properties": {
                                        "phone": {"type": "string", "description": "a US number, any format"},
                                        "source": {
                                            "type": "string",
                                            "enum": ["api", "disposition", "sms_keyword", "safe_harbor_key"],
                                        },
                                        "lead_id": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json({"type": "object"}, "opted out"),
                        **_errors(400, 401, 403, 422, 503),
                    },
                }
            },
            "/v1/calls": {
                "post": {
                    "summary": "Call a lead for an agent (click-to-call): the agent's phone rings first, "
                    "then the lead is dialed; every dial passes the compliance gate",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 200},
                            "description": "the same key again answers with the first call, placing nothing",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["agent_id"],
                                    "description": "exactly one of lead_id or phone",
                                    "properties": {
                                        "lead_id": {"type": "string"},
                                        "phone": {"type": "string", "description": "an ad-hoc US number"},
                                        "agent_id": {"type": "string"},
                                        "campaign_id": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {"call_id": {"type": "string"}, "status": {"type": "string"}},
                            },
                            "the call is under way",
                        ),
                        "403": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "error": {"const": "compliance_blocked"},
                                    "decision_id": {"type": "string"},
                                    "reasons": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "code": {"type": "string"},
                                                "message": {"type": "string"},
                                                "citation": {"type": ["string", "null"]},
                                            },
                                        },
                                    },
                                },
                            },
                            "the compliance gate blocked the call (or the token may not place it)",
                        ),
                        **_errors(400, 401, 409, 422, 503),
                    },
                },
                "get": {
                    "summary": "List calls, newest first (agents: only their own)",
                    "parameters": [
                        {"name": name, "in": "query", "schema": schema}
                        for name, schema in {
                            "lead_id": {"type": "string"},
                            "agent_id": {"type": "string"},
                            "campaign_id": {"type": "string"},
                            "since": {"type": "string", "format": "date-time"},
                            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                        }.items()
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}}
                                },
                            },
                            "the calls",
                        ),
                        **_errors(400, 401, 403, 422, 503),
                    },
                }
            },
            "/v1/calls/{call_id}": {
                "get": {
                    "summary": "One call's log",
                    "parameters": [_CALL_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Call"}, "the call"),
                        **_errors(401, 403, 404, 503),
                    },
                }
            },
            "/v1/calls/{call_id}/hangup": {
                "post": {
                    "summary": "End a live call",
                    "parameters": [_CALL_ID],
                    "responses": {
                        "202": _json({"type": "object"}, "the call is ending"),
                        **_errors(401, 403, 404, 409, 503),
                    },
                }
            },
            "/v1/agents/{agent_id}/events": {
                "get": {
                    "summary": "WebSocket of an agent's screen pops and call state changes "
                    "(browsers may pass the token as ?access_token=)",
                    "parameters": [{"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "101": {"description": "switching to the WebSocket protocol"},
                        **_errors(400, 401, 403),
                    },
                }
            },
            "/v1/calls/{call_id}/disposition": {
                "post": {
                    "summary": "Record the agent's disposition; moves the lead's pipeline stage; "
                    "do_not_call opts the number out at once",
                    "parameters": [_CALL_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["code"],
                                    "properties": {
                                        "code": {"type": "string"},
                                        "notes": {"type": "string"},
                                        "callback_at": {"type": "string", "format": "date-time"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json({"type": "object"}, "stored durably; reaches the CRM tables"),
                        **_errors(400, 401, 403, 404, 422, 503),
                    },
                }
            },
        },
    }
