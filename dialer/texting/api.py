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

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import Field

from compliance_rules.model import TextKind
from crm_bridge.kinds import RecordKind
from crm_bridge.store import Lead, TokenRole
from dialer.api.http import ALL_ROLES, DEPS, TOKEN, ApiError, problem, service
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import ComplianceProblem, QueryModel
from dialer.runtime.campaigns import known_campaign
from dialer.runtime.errors import ComplianceBlocked
from dialer.runtime.ids import Prefix, new_id
from dialer.texting.openapi import (
    PROVIDER_FORM,
    LeadMessages,
    MessageAnswer,
    MessageBody,
    PendingMessage,
    QueuedTextBody,
    TemplateBody,
    TemplateRequest,
    TextRequest,
)
from dialer.texting.provider import INBOUND_PATH, SIGNATURE_HEADER, STATUS_PATH, ProviderTextTransport
from dialer.texting.runtime import SendRequest, TextingRuntime, textable_number
from dialer.texting.templates import Sender, TemplateError, check_template

TEXTING: web.AppKey[TextingRuntime | None] = web.AppKey("texting", TextingRuntime)
SENDABLE_KINDS = {TextKind.MARKETING.value: TextKind.MARKETING, TextKind.CONVERSATION.value: TextKind.CONVERSATION}
NOT_RUNNING = "the dialer is not running texting, or a dependency is down; retry"
routes = RouteTable("texting")


class ConversationQuery(QueryModel):
    limit: int = Field(default=100, ge=1, le=1000, description="the newest texts to give (1-1000)")


def _texting(request: web.Request) -> TextingRuntime:
    return service(request, TEXTING, "texting runtime")


@routes.post("/v1/messages", "sendText", "Text a lead (crm and agent tokens): the gate decides with channel sms; a "
             "queued text waits for its sender number's slot and is checked again if it waited",
             roles=(TokenRole.CRM, TokenRole.AGENT), body=TextRequest, idempotent=True,
             responses={202: Answer(QueuedTextBody, "queued",
                                    headers={"Location": "the text (`GET /v1/messages/{message_id}`)"})},
             problems={403: ComplianceProblem},
             errors={403: "`compliance_blocked` (the gate's decision and reasons; nothing was sent), or `forbidden`",
                     409: "`no_open_conversation` (kind conversation, but the lead has not texted), "
                          "`campaign_inactive`",
                     422: "a field is invalid (`field` names it; `error` says why): `empty_body`, `too_long`, "
                          "`not_textable` (not a US mobile-capable number), `unknown_lead`, `unknown_template`, "
                          "`unknown_merge_field`, ...",
                     503: f"{NOT_RUNNING}; `outbox_unavailable`: the text could not be kept durably (202 "
                          "is answered only once it is), `texting_stopped`: the dialer is stopping"})
async def post_message(request: web.Request, body: TextRequest) -> web.StreamResponse:
    texting = _texting(request)
    if (body.lead_id is None) == (body.phone is None):
        raise ApiError(422, "invalid_field", "give exactly one of lead_id or phone", field="lead_id")
    if (body.body is None) == (body.template_id is None):
        raise ApiError(422, "invalid_field", "give exactly one of body or template_id", field="body")
    phone = textable_number(body.phone) if body.phone is not None else None
    agent_id = body.agent_id
    token = request[TOKEN]
    if token.role is TokenRole.AGENT:
        if agent_id not in (None, token.agent_id):
            raise ApiError(403, "forbidden", "an agent token may send texts only as its own agent", field="agent_id")
        agent_id = token.agent_id
    send = SendRequest(lead_id=body.lead_id, phone=phone, agent_id=agent_id, campaign_id=body.campaign_id,
                       body=body.body, template_id=body.template_id, kind=SENDABLE_KINDS.get(body.kind or ""),
                       requested_by=token.token_id)
    try:
        queued = await texting.send_text(send, message_id=new_id(Prefix.TEXT))
    except ComplianceBlocked as blocked:
        # Nothing was sent and no text exists: no message id is named.
        return problem(request, 403, "compliance_blocked", "the compliance gate blocked this text",
                       decision_id=blocked.decision_id,
                       reasons=[{"code": r.code, "message": r.message, "citation": r.citation} for r in blocked.reasons])
    return Reply(QueuedTextBody.model_validate(queued.to_json()), status=202,
                 location=f"/v1/messages/{queued.message_id}").response()


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


@routes.get("/v1/leads/{lead_id}/messages", "listLeadMessages",
            "A lead's texts, oldest first (agents: leads they own or texted)", roles=ALL_ROLES,
            parameters={"lead_id": "the lead's id"}, query=ConversationQuery,
            responses={200: Answer(LeadMessages, "the conversation")}, errors={404: "`lead_not_found`"})
async def lead_messages(request: web.Request, query: ConversationQuery) -> Reply:
    lead = await _visible_lead(request, request.match_info["lead_id"])
    messages = await request.app[DEPS].store.list_messages(lead_id=lead.lead_id, limit=query.limit)
    return Reply(LeadMessages(lead_id=lead.lead_id, messages=[MessageBody.of(m) for m in messages]))


@routes.get("/v1/messages/{message_id}", "getText", "One text, with its delivery status", roles=ALL_ROLES,
            parameters={"message_id": "the text's id"},
            responses={200: Answer(MessageAnswer, "the text (or only its state while its row is on its way)")},
            errors={404: "`message_not_found`"})
async def get_message(request: web.Request) -> Reply:
    message_id = request.match_info["message_id"]
    message = await request.app[DEPS].store.get_message(message_id)
    if message is None:
        texting = request.app.get(TEXTING)
        status = texting.status(message_id) if texting else None
        if status is None:
            raise ApiError(404, "message_not_found", "no such message")
        return Reply(MessageAnswer(PendingMessage(message_id=message_id, status=status)))
    if message.lead_id is not None and request[TOKEN].role is TokenRole.AGENT:
        await _visible_lead(request, message.lead_id)
    return Reply(MessageAnswer(MessageBody.of(message)))


@routes.post("/v1/campaigns/{campaign_id}/message-templates", "putMessageTemplate",
             "Create or replace a campaign's message template (crm and admin tokens); refused unless it names the "
             "agency", roles=(TokenRole.CRM, TokenRole.ADMIN), parameters={"campaign_id": "the campaign's id"},
             body=TemplateRequest,
             responses={201: Answer(TemplateBody, "created", headers={
                 "Location": "the campaign's templates (`POST` again with the same name replaces it)"}),
                 200: Answer(TemplateBody, "replaced")},
             errors={404: "`campaign_not_found`",
                     422: "`template_lacks_identification`, `unknown_merge_field`, or an invalid field",
                     503: NOT_RUNNING})
async def post_template(request: web.Request, body: TemplateRequest) -> Reply:
    deps = request.app[DEPS]
    texting = _texting(request)
    campaign_id = request.match_info["campaign_id"]
    campaign = await known_campaign(deps.store, campaign_id)
    sender: Sender = texting.sender_for(campaign)
    try:
        check_template(body.body, sender)
    except TemplateError as error:
        raise ApiError(422, error.reason, str(error), field="body") from None
    existing = await deps.store.find_template(campaign_id, body.name)
    template_id = existing.template_id if existing else new_id(Prefix.TEXT_TEMPLATE)
    await deps.records.put(RecordKind.MESSAGE_TEMPLATE, {
        "template_id": template_id, "campaign_id": campaign_id, "name": body.name, "body": body.body,
        "created_by": request[TOKEN].token_id, "created_at": datetime.now(UTC)})
    answer = TemplateBody(template_id=template_id, campaign_id=campaign_id, name=body.name, body=body.body)
    if existing is not None:
        return Reply(answer)
    return Reply(answer, status=201, location=f"/v1/campaigns/{campaign_id}/message-templates")


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


WEBHOOK_ERRORS = {403: "`invalid_signature`", 404: "this dialer does not text through an HTTP provider",
                  422: "a required form field is missing", 503: NOT_RUNNING}
SIGNED = {SIGNATURE_HEADER: "base64(HMAC-SHA1(token, URL + sorted form names and values))"}


@routes.post(INBOUND_PATH, "providerInbound",
             "The HTTP messaging provider's webhook for a text a phone sent us (signed; no bearer token)", roles=None,
             header_parameters=SIGNED, extra={"requestBody": PROVIDER_FORM}, errors=WEBHOOK_ERRORS,
             responses={200: Answer(None, "accepted", content_type="text/xml")})
async def provider_inbound(request: web.Request) -> web.StreamResponse:
    texting, transport, form = await _signed_form(request, INBOUND_PATH)
    text = transport.parse_inbound(form, datetime.now(UTC))
    if text is None:
        raise ApiError(422, "invalid_field", "From and To are required", field="From")
    # Acknowledged once queued for the ordered worker; the provider needs no reply text.
    texting.accept(text)
    return web.Response(text="<Response/>", content_type="text/xml")


@routes.post(STATUS_PATH, "providerStatus",
             "The HTTP messaging provider's delivery status callback (signed; no bearer token)", roles=None,
             header_parameters=SIGNED, extra={"requestBody": PROVIDER_FORM}, errors=WEBHOOK_ERRORS,
             responses={204: Answer(None, "recorded", content_type="")})
async def provider_status(request: web.Request) -> web.StreamResponse:
    texting, transport, form = await _signed_form(request, STATUS_PATH)
    receipt = transport.parse_status(form, datetime.now(UTC))
    if receipt is None:
        raise ApiError(422, "invalid_field", "MessageSid and a known MessageStatus are required", field="MessageStatus")
    await texting.receipt(receipt)  # durable before the 2xx: the provider will not send it again
    return web.Response(status=204)


def add_texting_routes(app: web.Application, texting: TextingRuntime | None) -> None:
    """The runtime the routes use (the routes themselves are in `routes`)."""
    app[TEXTING] = texting
