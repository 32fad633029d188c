"""HTTP routes of texting. Added to the API app by `dialer.app.build_app`:

- `POST /v1/messages` (crm, agent; idempotent with `Idempotency-Key`) -> 202 queued, 403
  `compliance_blocked` with the gate's reasons, 4xx naming the field for bad input
- `GET /v1/messages/{message_id}` and `GET /v1/leads/{lead_id}/messages` (agents: their leads)
- `POST /v1/campaigns/{campaign_id}/message-templates` (crm, admin): a template is refused when
  it does not identify the agency
- `POST /v1/texting/provider/inbound` and `/status`: the HTTP provider's signed webhooks (no
  bearer token; the signature is the authentication)
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from compliance_rules.model import TextKind
from crm_bridge.kinds import RecordKind
from crm_bridge.store import CrmStore, Lead, Message, TokenRole
from dialer.api.http import (
    ALL_ROLES,
    DEPS,
    TOKEN,
    ApiError,
    allow,
    json_object,
    json_value,
    limit_parameter,
    only_parameters,
    optional_text,
    service,
)
from dialer.runtime.errors import ComplianceBlocked, Refused
from dialer.runtime.ids import Prefix, new_id
from dialer.texting.provider import INBOUND_PATH, SIGNATURE_HEADER, STATUS_PATH, ProviderTextTransport
from dialer.texting.runtime import SendRequest, TextingRuntime, textable_number
from dialer.texting.templates import Sender, TemplateError, check_template

TEXTING: web.AppKey[TextingRuntime | None] = web.AppKey("texting", TextingRuntime)
IDEMPOTENCY_KEY_MAX = 200
SENDABLE_KINDS = {TextKind.MARKETING.value: TextKind.MARKETING, TextKind.CONVERSATION.value: TextKind.CONVERSATION}


def _texting(request: web.Request) -> TextingRuntime:
    return service(request, TEXTING, "texting runtime")


def message_json(message: Message) -> dict[str, object]:
    return {f.name: json_value(getattr(message, f.name)) for f in fields(message)}


@allow(TokenRole.CRM, TokenRole.AGENT)
async def post_message(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    texting = _texting(request)
    body = await json_object(request, allowed={"lead_id", "phone", "agent_id", "campaign_id", "body",
                                               "template_id", "kind"})
    lead_id, phone, agent_id, campaign_id, text, template_id, kind = (
        optional_text(body, name) for name in ("lead_id", "phone", "agent_id", "campaign_id", "body",
                                               "template_id", "kind"))
    if (lead_id is None) == (phone is None):
        raise ApiError(422, "invalid_field", "give exactly one of lead_id or phone", field="lead_id")
    if (text is None) == (template_id is None):
        raise ApiError(422, "invalid_field", "give exactly one of body or template_id", field="body")
    if kind is not None and kind not in SENDABLE_KINDS:
        raise ApiError(422, "invalid_field", f"kind must be one of {', '.join(SENDABLE_KINDS)}", field="kind")
    if phone is not None:
        phone = textable_number(phone)
    token = request[TOKEN]
    if token.role is TokenRole.AGENT:
        if agent_id not in (None, token.agent_id):
            raise ApiError(403, "forbidden", "an agent token may send texts only as its own agent", field="agent_id")
        agent_id = token.agent_id
    message_id = new_id(Prefix.TEXT)
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX:
            raise ApiError(400, "invalid_header", "Idempotency-Key must be 1-200 characters", field="Idempotency-Key")
        bound = await deps.store.claim_idempotency_key(f"{token.token_id}:messages:{key}", message_id)
        if bound != message_id:
            # The same request again: answer with the first text, send nothing.
            status = texting.status(bound) or await _stored_status(deps.store, bound)
            return web.json_response({"message_id": bound, "status": status, "replayed": True}, status=202)
    send = SendRequest(lead_id=lead_id, phone=phone, agent_id=agent_id, campaign_id=campaign_id, body=text,
                       template_id=template_id, kind=SENDABLE_KINDS.get(kind or ""), requested_by=token.token_id)
    try:
        queued = await texting.send_text(send, message_id=message_id)
    except ComplianceBlocked as blocked:
        if key is not None:
            # Nothing was sent: a retry is decided again (and audited again), not replayed.
            await deps.store.release_idempotency_key(f"{token.token_id}:messages:{key}", message_id)
        return web.json_response({
            "error": "compliance_blocked", "message": "the compliance gate blocked this text",
            "decision_id": blocked.decision_id, "message_id": message_id,
            "reasons": [{"code": r.code, "message": r.message, "citation": r.citation} for r in blocked.reasons],
        }, status=403)
    except Refused:
        if key is not None:
            # Nothing was sent: the key must not answer a retry with a text that does not exist.
            await deps.store.release_idempotency_key(f"{token.token_id}:messages:{key}", message_id)
        raise
    return web.json_response(queued.to_json(), status=202)


async def _stored_status(store: CrmStore, message_id: str) -> str:
    message = await store.get_message(message_id)
    return "queued" if message is None else message.status


async def _visible_lead(request: web.Request, lead_id: str) -> Lead:
    lead = await request.app[DEPS].store.get_lead(lead_id)
    token = request[TOKEN]
    if lead is None:
        raise ApiError(404, "lead_not_found", "no such lead")
    if token.role is TokenRole.AGENT and lead.owner_agent_id != token.agent_id:
        messages = await request.app[DEPS].store.list_messages(lead_id=lead_id)
        if not any(m.agent_id == token.agent_id for m in messages):
            raise ApiError(404, "lead_not_found", "no such lead")  # an agent is not told about others' leads
    return lead


@allow(*ALL_ROLES)
async def lead_messages(request: web.Request) -> web.Response:
    only_parameters(request, "limit")
    lead = await _visible_lead(request, request.match_info["lead_id"])
    messages = await request.app[DEPS].store.list_messages(lead_id=lead.lead_id, limit=limit_parameter(request))
    return web.json_response({"lead_id": lead.lead_id, "messages": [message_json(m) for m in messages]})


@allow(*ALL_ROLES)
async def get_message(request: web.Request) -> web.Response:
    message = await request.app[DEPS].store.get_message(request.match_info["message_id"])
    if message is None:
        texting = request.app.get(TEXTING)
        status = texting.status(request.match_info["message_id"]) if texting else None
        if status is None:
            raise ApiError(404, "message_not_found", "no such message")
        return web.json_response({"message_id": request.match_info["message_id"], "status": status})
    if message.lead_id is not None and request[TOKEN].role is TokenRole.AGENT:
        await _visible_lead(request, message.lead_id)
    return web.json_response(message_json(message))


@allow(TokenRole.CRM, TokenRole.ADMIN)
async def post_template(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    texting = _texting(request)
    body = await json_object(request, allowed={"name", "body"})
    name, text = optional_text(body, "name"), optional_text(body, "body")
    if not name or not name.strip() or len(name) > 200:
        raise ApiError(422, "invalid_field", "name is required (1-200 characters)", field="name")
    if text is None:
        raise ApiError(422, "invalid_field", "body is required", field="body")
    campaign_id = request.match_info["campaign_id"]
    campaign = await deps.store.get_campaign(campaign_id)
    if campaign is None:
        raise ApiError(404, "campaign_not_found", f"no campaign {campaign_id!r}")
    sender: Sender = texting.sender_for(campaign)
    try:
        check_template(text, sender)
    except TemplateError as error:
        raise ApiError(422, error.reason, str(error), field="body") from None
    existing = await deps.store.find_template(campaign_id, name)
    template_id = existing.template_id if existing else new_id(Prefix.TEXT_TEMPLATE)
    await deps.records.put(RecordKind.MESSAGE_TEMPLATE, {
        "template_id": template_id, "campaign_id": campaign_id, "name": name, "body": text,
        "created_by": request[TOKEN].token_id, "created_at": datetime.now(UTC)})
    return web.json_response({"template_id": template_id, "campaign_id": campaign_id, "name": name, "body": text},
                             status=201 if existing is None else 200)


# ---- the HTTP provider's webhooks -----------------------------------------------------------------
async def _signed_form(request: web.Request, path: str) -> tuple[TextingRuntime, ProviderTextTransport, dict[str, Any]]:
    texting = _texting(request)
    transport = texting.transport
    if not isinstance(transport, ProviderTextTransport):
        raise ApiError(404, "not_found", "this dialer does not text through an HTTP provider")
    form = {key: str(value) for key, value in (await request.post()).items()}
    if not transport.verify(path, form, request.headers.get(SIGNATURE_HEADER)):
        raise ApiError(403, "invalid_signature", f"the {SIGNATURE_HEADER} header does not sign this request")
    return texting, transport, form


async def provider_inbound(request: web.Request) -> web.Response:
    texting, transport, form = await _signed_form(request, INBOUND_PATH)
    text = transport.parse_inbound(form, datetime.now(UTC))
    if text is None:
        raise ApiError(422, "invalid_field", "From and To are required", field="From")
    # Acknowledged once queued for the ordered worker; the provider needs no reply text.
    texting.accept(text)
    return web.Response(text="<Response/>", content_type="text/xml")


async def provider_status(request: web.Request) -> web.Response:
    texting, transport, form = await _signed_form(request, STATUS_PATH)
    receipt = transport.parse_status(form, datetime.now(UTC))
    if receipt is None:
        raise ApiError(422, "invalid_field", "MessageSid and a known MessageStatus are required", field="MessageStatus")
    await texting.receipt(receipt)  # durable before the 2xx: the provider will not send it again
    return web.Response(status=204)


PUBLIC_TEXTING_PATHS = frozenset({INBOUND_PATH, STATUS_PATH})


def add_texting_routes(app: web.Application, texting: TextingRuntime | None) -> None:
    app[TEXTING] = texting
    app.router.add_post("/v1/messages", post_message)
    app.router.add_get("/v1/messages/{message_id}", get_message)
    app.router.add_get("/v1/leads/{lead_id}/messages", lead_messages)
    app.router.add_post("/v1/campaigns/{campaign_id}/message-templates", post_template)
    app.router.add_post(INBOUND_PATH, provider_inbound)
    app.router.add_post(STATUS_PATH, provider_status)
