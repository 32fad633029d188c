"""The OpenAPI paths of texting (merged into `dialer.api.openapi`)."""

from __future__ import annotations

from typing import Any

_TEXT = {400: "malformed request", 401: "missing, unknown or revoked token", 403: "the token's role may not do this",
         404: "no such resource (or not visible to this token)",
         409: "`no_open_conversation` (kind conversation, but the lead has not texted), `campaign_inactive`",
         422: "a field is invalid (`field` names it; `error` says why): `empty_body`, `too_long`, `not_textable` "
              "(not a US mobile-capable number), `template_lacks_identification`, `unknown_merge_field`, "
              "`unknown_lead`, `unknown_template`, ...",
         503: "the dialer is not running texting, or a dependency is down; retry"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": _TEXT[s],
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_NULLABLE = {"type": ["string", "null"]}
MESSAGE = {
    "type": "object",
    "description": "One text, sent or received (the CRM's messages row). status: queued, checking, sending, sent, "
                   "blocked, expired, failed, canceled (outbound), received (inbound); delivery_status from the "
                   "network's receipts: delivered, undelivered, failed.",
    "properties": {
        "message_id": {"type": "string"}, "version": {"type": "integer"},
        "direction": {"type": "string", "enum": ["outbound", "inbound"]},
        "kind": {"type": "string", "description": "marketing, conversation, help_reply, opt_out_confirmation; "
                                                  "inbound: opt_out, opt_in, help or reply"},
        "lead_id": _NULLABLE, "agent_id": _NULLABLE, "campaign_id": _NULLABLE,
        "from_number": {"type": "string"}, "to_number": {"type": "string"}, "body": {"type": "string"},
        "encoding": {"type": "string", "enum": ["gsm7", "ucs2"]}, "segments": {"type": "integer"},
        "template_id": _NULLABLE, "transport": {"type": "string", "enum": ["sip", "http"]},
        "provider_message_id": _NULLABLE, "status": {"type": "string"}, "status_detail": _NULLABLE,
        "delivery_status": _NULLABLE, "delivery_error": _NULLABLE,
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "compliance_decision_id": _NULLABLE, "requested_by": _NULLABLE,
        "created_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
_BLOCKED = _json({"type": "object", "properties": {
    "error": {"const": "compliance_blocked"}, "decision_id": {"type": "string"}, "message_id": {"type": "string"},
    "reasons": {"type": "array", "items": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "citation": {"type": ["string", "null"]}}}},
}}, "the compliance gate blocked the text (or the token may not send it); nothing was sent")
_FORM = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}
_SIGNATURE = {"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"},
              "description": "base64(HMAC-SHA1(token, URL + sorted form names and values))"}


def texting_paths() -> dict[str, Any]:
    return {
        "/v1/messages": {"post": {
            "summary": "Text a lead (crm and agent tokens): the gate decides with channel sms; a queued text waits "
                       "for its sender number's slot and is checked again if it waited",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 200},
                            "description": "the same key again answers with the first text, sending nothing"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "description": "exactly one of lead_id or phone, and one of body or template_id",
                "properties": {
                    "lead_id": {"type": "string"}, "phone": {"type": "string", "description": "a US mobile number"},
                    "agent_id": {"type": "string"}, "campaign_id": {"type": "string"},
                    "body": {"type": "string", "maxLength": 1600}, "template_id": {"type": "string"},
                    "kind": {"type": "string", "enum": ["marketing", "conversation"],
                             "description": "default: conversation when the lead started one, else marketing"},
                }}}}},
            "responses": {
                "202": _json({"type": "object", "properties": {
                    "message_id": {"type": "string"}, "status": {"type": "string"}, "kind": {"type": "string"},
                    "body": {"type": "string", "description": "as it will be sent (merge fields filled, "
                                                              "identification and opt-out wording added)"},
                    "encoding": {"type": "string"}, "segments": {"type": "integer"},
                    "decision_id": {"type": "string"}}}, "queued"),
                "403": _BLOCKED, **_errors(400, 401, 409, 422, 503)},
        }},
        "/v1/messages/{message_id}": {"get": {
            "summary": "One text, with its delivery status",
            "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json(MESSAGE, "the text"), **_errors(401, 404, 503)},
        }},
        "/v1/leads/{lead_id}/messages": {"get": {
            "summary": "A lead's texts, oldest first (agents: leads they own or texted)",
            "parameters": [{"name": "lead_id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                      "maximum": 1000}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "lead_id": {"type": "string"}, "messages": {"type": "array", "items": MESSAGE}}}, "the conversation"),
                **_errors(400, 401, 404, 422, 503)},
        }},
        "/v1/campaigns/{campaign_id}/message-templates": {"post": {
            "summary": "Create or replace a campaign's message template (crm and admin tokens); refused unless it "
                       "names the agency; merge fields {first_name} {last_name} {agency_name} {agency_phone} "
                       "{agent_name}",
            "parameters": [{"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["name", "body"],
                "properties": {"name": {"type": "string"}, "body": {"type": "string", "maxLength": 1600}}}}}},
            "responses": {"201": _json({"type": "object"}, "created"), "200": _json({"type": "object"}, "replaced"),
                          **_errors(400, 401, 403, 404, 422, 503)},
        }},
        "/v1/texting/provider/inbound": {"post": {
            "summary": "The HTTP messaging provider's webhook for a text a phone sent us (signed; no bearer token)",
            "security": [], "parameters": [_SIGNATURE], "requestBody": _FORM,
            "responses": {"200": {"description": "accepted", "content": {"text/xml": {"schema": {"type": "string"}}}},
                          **_errors(403, 404, 422, 503)},
        }},
        "/v1/texting/provider/status": {"post": {
            "summary": "The HTTP messaging provider's delivery status callback (signed; no bearer token)",
            "security": [], "parameters": [_SIGNATURE], "requestBody": _FORM,
            "responses": {"204": {"description": "recorded"}, **_errors(403, 404, 422, 503)},
        }},
    }
