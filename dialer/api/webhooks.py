"""`/v1/webhooks`: subscriptions (CRUD, secret rotation), their delivery log, and replays
(docs/webhooks.md). Admin tokens only: a subscription's secret signs what the CRM trusts.
Every change is audited like the other admin changes (the secrets themselves never are)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from compliance_rules.optout import OptOutSource
from crm_bridge import webhooks as queue
from crm_bridge.admin import AdminError, Entity
from crm_bridge.dispositions import DispositionCode, PipelineStage
from crm_bridge.records import CallDirection, CallOutcome
from crm_bridge.store import TokenRole
from dialer.api.admin import actor_of, admin_of, as_api_error
from dialer.api.crm import DispositionBody
from dialer.api.http import DEPS, ApiError
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Line, QueryModel, RequestModel, ResponseModel, UtcTime, UtcTimeIn

routes = RouteTable("webhooks")
# Tells the running dispatcher to look at its queue now (a replay was queued).
WEBHOOK_WAKE: web.AppKey[Callable[[], None]] = web.AppKey("webhook_wake")
ADMINS = (TokenRole.ADMIN,)
SUBSCRIPTION = {"subscription_id": "the subscription's id (`whk-...`)"}
EventName = Literal["call.ended", "disposition.created", "recording.ready", "lead.opted_out", "lead.stage_changed",
                    "message.received", "message.sent", "message.delivered", "message.failed", "message.blocked",
                    "message.expired", "message.canceled"]


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2000:
        raise ValueError("must be an http:// or https:// URL")
    # A typo such as a space in the host or port 99999 would otherwise only show as failed
    # deliveries, a day later: refused when the subscription is made.
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError("must not contain spaces or control characters (percent-encode them)")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("must have a port between 1 and 65535 (or none)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (the signature authenticates the sender)")
    return value


Url = Annotated[str, AfterValidator(_url)]


class SubscriptionCreate(RequestModel):
    url: Url
    event_types: list[EventName] = Field(min_length=1, description="the events to send")
    description: Line | None = None


class SubscriptionUpdate(RequestModel):
    url: Url | None = None
    event_types: list[EventName] | None = Field(default=None, min_length=1)
    description: Line | None = None
    active: bool | None = None


class SubscriptionBody(ResponseModel):
    subscription_id: str
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    previous_expires_at: UtcTime | None = Field(description="until when the previous secret also signs")
    created_at: UtcTime
    updated_at: UtcTime


class SubscriptionWithSecret(SubscriptionBody):
    secret: str = Field(description="`whsec_...`: shown on creation and rotation only")


class SubscriptionList(ResponseModel):
    webhooks: list[SubscriptionBody]
    next: str | None = Field(description="always null")


class RotateRequest(RequestModel):
    keep_previous_seconds: int = Field(default=86400, ge=0, le=7 * 86400,
                                       description="how long the previous secret still signs (both are sent)")


class ReplayRequest(RequestModel):
    event_id: Line | None = None
    since: UtcTimeIn | None = Field(default=None, description="events that occurred at or after this time")
    until: UtcTimeIn | None = Field(default=None, description="... and before this time")
    event_types: list[EventName] | None = None

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: datetime | None, info: ValidationInfo) -> datetime | None:
        # An empty range is a client's mistake (the times swapped), not "nothing to send".
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise ValueError("must be after since")
        return until


TextEventName = Literal["message.sent", "message.delivered", "message.failed", "message.blocked", "message.expired",
                        "message.canceled"]


class OutboundText(ResponseModel):
    """An outbound text as the CRM's `messages` row has it: the `data` of its events."""

    message_id: str
    kind: str = Field(description="marketing, conversation, help_reply or opt_out_confirmation")
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    from_number: str
    to_number: str
    body: str = Field(description="as sent")
    encoding: str = Field(description="gsm7 or ucs2")
    segments: int
    template_id: str | None
    transport: str = Field(description="sip or http")
    provider_message_id: str | None
    status: str = Field(description="sent, failed, blocked, expired or canceled")
    status_detail: str | None = Field(description="why: the gate's reason codes, `unknown_delivery: ...`, "
                                                  "`lease_lost: ...`, the transport's error")
    delivery_status: str | None = Field(description="the carrier's receipt: delivered, undelivered, failed")
    delivery_error: str | None
    delivered_at: UtcTime | None
    compliance_decision_id: str | None
    requested_by: str | None
    created_at: UtcTime
    sent_at: UtcTime | None
    updated_at: UtcTime
    failure: Literal["dialer", "carrier"] | None = Field(
        description="in `message.failed`: `dialer` (never delivered by us) or `carrier` (its receipt); else null")


class CallEndedDisposition(ResponseModel):
    """The call's latest disposition when it ended (null when none yet: `disposition.created` follows)."""

    disposition_id: str
    code: DispositionCode
    notes: str | None
    callback_at: UtcTime | None
    disposed_at: UtcTime


class CallEnded(ResponseModel):
    """The `data` of `call.ended`: the call's row (the fields a CRM acts on; `GET /v1/calls/{call_id}`
    has all of them), its disposition, and its recording's audio."""

    call_id: str
    direction: CallDirection
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    lead_number: str | None = Field(description="E.164")
    caller_id: str | None
    requested_at: UtcTime
    lead_answered_at: UtcTime | None
    bridged_at: UtcTime | None
    ended_at: UtcTime
    outcome: CallOutcome
    ring_seconds: float | None
    talk_seconds: float | None
    total_seconds: float | None
    recording_id: str | None
    amd_result: str | None
    safe_harbor_played: bool
    abandoned: bool
    disposition: CallEndedDisposition | None
    recording_url: str | None = Field(description="the recording's audio (absolute URL; bearer token needed)")


class DispositionCreated(DispositionBody):
    """The `data` of `disposition.created`: the disposition as `GET /v1/calls/{call_id}/dispositions`
    has it, and the call's campaign."""

    campaign_id: str | None


class RecordingReady(ResponseModel):
    """The `data` of `recording.ready` (`GET /v1/recordings/{recording_id}` has the rest)."""

    recording_id: str
    call_id: str | None
    lead_id: str | None
    format: str
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str
    recorded_at: UtcTime
    url: str = Field(description="the audio (absolute URL; bearer token needed)")


class LeadOptedOut(ResponseModel):
    """The `data` of `lead.opted_out`."""

    phone: str = Field(description="E.164")
    source: OptOutSource
    lead_id: str | None
    call_id: str | None


class LeadStageChanged(ResponseModel):
    """The `data` of `lead.stage_changed`: moved by a disposition, or by the lead's own first text."""

    lead_id: str | None
    call_id: str | None
    disposition_id: str | None = Field(description="the disposition that moved it; null when a text did")
    message_id: str | None = Field(description="the lead's text that moved it; null when a disposition did")
    stage_before: PipelineStage | None
    stage_after: PipelineStage


class InboundText(ResponseModel):
    """The `data` of `message.received`: a text from a lead (or any number)."""

    message_id: str
    lead_id: str | None
    campaign_id: str | None
    from_number: str
    to_number: str
    body: str
    kind: str = Field(description="opt_out, opt_in, help or reply")
    created_at: UtcTime


class CallEndedEvent(ResponseModel):
    """A call ended (each type's body is POSTed to a subscription's URL, signed: docs/webhooks.md)."""

    id: str = Field(description="`evt_call_ended_<call id>`, also `webhook-id`: de-duplicate on it")
    type: Literal["call.ended"]
    timestamp: UtcTime = Field(description="when what it tells of occurred")
    data: CallEnded


class DispositionCreatedEvent(ResponseModel):
    """A call (or lead) was disposed."""

    id: str = Field(description="`evt_disposition_<disposition id>`, also `webhook-id`")
    type: Literal["disposition.created"]
    timestamp: UtcTime
    data: DispositionCreated


class RecordingReadyEvent(ResponseModel):
    """A recording is sealed in the archive."""

    id: str = Field(description="`evt_recording_<recording id>`, also `webhook-id`")
    type: Literal["recording.ready"]
    timestamp: UtcTime
    data: RecordingReady


class LeadOptedOutEvent(ResponseModel):
    """A number was put on the opt-out list."""

    id: str = Field(description="`evt_opted_out_<opt-out id>`, also `webhook-id`")
    type: Literal["lead.opted_out"]
    timestamp: UtcTime
    data: LeadOptedOut


class LeadStageChangedEvent(ResponseModel):
    """A lead moved along the pipeline."""

    id: str = Field(description="`evt_stage_<disposition id>` or `evt_stage_text_<message id>`, also `webhook-id`")
    type: Literal["lead.stage_changed"]
    timestamp: UtcTime
    data: LeadStageChanged


class InboundTextEvent(ResponseModel):
    """A text arrived."""

    id: str = Field(description="`evt_message_<message id>`, also `webhook-id`")
    type: Literal["message.received"]
    timestamp: UtcTime
    data: InboundText


class OutboundTextEvent(ResponseModel):
    """An outbound text's outcome (one type per outcome, each at most once per text)."""

    id: str = Field(description="`evt_message_<outcome>_<message id>`, also `webhook-id`")
    type: TextEventName
    timestamp: UtcTime
    data: OutboundText


# Each event type's body: the OpenAPI document's `webhooks` entry of that type points at it.
WEBHOOK_EVENT_MODELS: dict[str, type[ResponseModel]] = {
    "call.ended": CallEndedEvent, "disposition.created": DispositionCreatedEvent,
    "recording.ready": RecordingReadyEvent, "lead.opted_out": LeadOptedOutEvent,
    "lead.stage_changed": LeadStageChangedEvent, "message.received": InboundTextEvent,
    **{name: OutboundTextEvent for name in get_args(TextEventName)}}


class ReplayAccepted(ResponseModel):
    queued: int = Field(description="deliveries queued")


class DeliveryQuery(QueryModel):
    status: Literal["pending", "delivered", "parked"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    before: int | None = Field(default=None, ge=1, le=2**62, description="deliveries older than this id")


class DeliveryBody(ResponseModel):
    delivery_id: int
    event_id: str
    event_type: str
    occurred_at: UtcTime
    subject: str = Field(description="the call (or lead, number) whose events arrive in order")
    status: Literal["pending", "delivered", "parked"]
    attempts: int
    next_attempt_at: UtcTime
    last_attempt_at: UtcTime | None
    last_status: int | None
    last_error: str | None
    delivered_at: UtcTime | None
    replay: bool
    created_at: UtcTime


class DeliveryPage(ResponseModel):
    deliveries: list[DeliveryBody]
    next: str | None = Field(description="the URL of older deliveries; null when there are none")


class AttemptBody(ResponseModel):
    attempted_at: UtcTime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryBody):
    attempt_log: list[AttemptBody]


def _body(row: dict[str, Any], model: type[SubscriptionBody] = SubscriptionBody, **extra: Any) -> Any:
    return model.model_validate({**{name: row.get(name) for name in SubscriptionBody.model_fields}, **extra})


async def _secretless(request: web.Request, subscription_id: str) -> dict[str, Any]:
    try:
        return await admin_of(request).get(Entity.WEBHOOK, subscription_id)
    except AdminError as error:
        raise as_api_error(error) from None


@routes.get("/v1/webhooks", "listWebhooks", "The webhook subscriptions", roles=ADMINS,
            responses={200: Answer(SubscriptionList, "the subscriptions")})
async def list_webhooks(request: web.Request) -> Reply:
    rows = await admin_of(request).list_all(Entity.WEBHOOK)
    return Reply(SubscriptionList(webhooks=[_body(row) for row in rows], next=None))


@routes.post("/v1/webhooks", "createWebhook", "Subscribe an endpoint to events; the answer holds its secret",
             roles=ADMINS, body=SubscriptionCreate,
             responses={201: Answer(SubscriptionWithSecret, "the subscription", headers={"Location": "it"})},
             errors={422: "an invalid field"})
async def create_webhook(request: web.Request, body: SubscriptionCreate) -> Reply:
    secret = queue.new_secret()
    values = {"subscription_id": f"whk-{uuid.uuid4().hex[:16]}", "url": body.url,
              "event_types": sorted(set(body.event_types)), "description": body.description, "secret": secret}
    row = await admin_of(request).create(Entity.WEBHOOK, values, actor_of(request))
    return Reply(_body(row, SubscriptionWithSecret, secret=secret), status=201,
                 location=f"/v1/webhooks/{row['subscription_id']}")


@routes.get("/v1/webhooks/{subscription_id}", "getWebhook", "One subscription", roles=ADMINS, parameters=SUBSCRIPTION,
            responses={200: Answer(SubscriptionBody, "the subscription")}, errors={404: "`webhook_not_found`"})
async def get_webhook(request: web.Request) -> Reply:
    return Reply(_body(await _secretless(request, request.match_info["subscription_id"])))


@routes.route("PATCH", "/v1/webhooks/{subscription_id}", "updateWebhook", "Change a subscription (the fields given)",
              roles=ADMINS, parameters=SUBSCRIPTION, body=SubscriptionUpdate,
              responses={200: Answer(SubscriptionBody, "the subscription")},
              errors={404: "`webhook_not_found`", 422: "an invalid field"})
async def update_webhook(request: web.Request, body: SubscriptionUpdate) -> Reply:
    values = body.model_dump(exclude_unset=True)
    for required in ("url", "event_types", "active"):
        if required in values and values[required] is None:
            raise ApiError(422, "invalid_field", f"{required} cannot be null", field=required)
    if "event_types" in values:
        values["event_types"] = sorted(set(values["event_types"]))
    try:
        row = await admin_of(request).update(Entity.WEBHOOK, request.match_info["subscription_id"], values,
                                             actor_of(request))
    except AdminError as error:
        raise as_api_error(error) from None
    return Reply(_body(row))


@routes.delete("/v1/webhooks/{subscription_id}", "deleteWebhook", "Delete a subscription and its delivery log",
               roles=ADMINS, parameters=SUBSCRIPTION, responses={200: Answer(SubscriptionBody, "what it was")},
               errors={404: "`webhook_not_found`"})
async def delete_webhook(request: web.Request) -> Reply:
    try:
        row = await admin_of(request).delete(Entity.WEBHOOK, request.match_info["subscription_id"], actor_of(request))
    except AdminError as error:
        raise as_api_error(error) from None
    return Reply(_body(row))


@routes.post("/v1/webhooks/{subscription_id}/rotate-secret", "rotateWebhookSecret",
             "A new secret; the previous one still signs (a second signature) for `keep_previous_seconds`",
             roles=ADMINS, parameters=SUBSCRIPTION, body=RotateRequest,
             responses={200: Answer(SubscriptionWithSecret, "the subscription and its new secret")},
             errors={404: "`webhook_not_found`"})
async def rotate_secret(request: web.Request, body: RotateRequest) -> Reply:
    subscription_id = request.match_info["subscription_id"]
    secret = queue.new_secret()
    async with request.app[DEPS].store.acquire() as conn:
        current = await conn.fetchrow("SELECT secret, now() AS now FROM webhook_subscriptions WHERE subscription_id = $1",
                                      subscription_id)
    if current is None:
        raise ApiError(404, "webhook_not_found", f"no webhook {subscription_id!r}")
    expires: datetime = current["now"] + timedelta(seconds=body.keep_previous_seconds)
    values = {"secret": secret, "previous_secret": current["secret"], "previous_expires_at": expires}
    try:
        row = await admin_of(request).update(Entity.WEBHOOK, subscription_id, values, actor_of(request),
                                             action="rotate_secret")
    except AdminError as error:
        raise as_api_error(error) from None
    return Reply(_body(row, SubscriptionWithSecret, secret=secret))


@routes.get("/v1/webhooks/{subscription_id}/deliveries", "listWebhookDeliveries",
            "The delivery log, newest first (pending, delivered, parked)", roles=ADMINS, parameters=SUBSCRIPTION,
            query=DeliveryQuery, responses={200: Answer(DeliveryPage, "a page of deliveries")},
            errors={404: "`webhook_not_found`"})
async def list_deliveries(request: web.Request, query: DeliveryQuery) -> Reply:
    subscription_id = request.match_info["subscription_id"]
    await _secretless(request, subscription_id)
    async with request.app[DEPS].store.acquire() as conn:
        rows = await queue.deliveries(conn, subscription_id, status=query.status, before=query.before,
                                      limit=query.limit + 1)
    items = rows[: query.limit]
    next_url = None
    if len(rows) > query.limit:
        status = f"&status={query.status}" if query.status else ""
        next_url = f"{request.path}?limit={query.limit}&before={items[-1]['delivery_id']}{status}"
    return Reply(DeliveryPage(deliveries=[DeliveryBody.model_validate(row) for row in items], next=next_url))


@routes.get("/v1/webhooks/{subscription_id}/deliveries/{delivery_id}", "getWebhookDelivery",
            "One delivery and every attempt", roles=ADMINS,
            parameters={**SUBSCRIPTION, "delivery_id": "the delivery's number"},
            responses={200: Answer(DeliveryDetail, "the delivery")}, errors={404: "`delivery_not_found`"})
async def get_delivery(request: web.Request) -> Reply:
    subscription_id = request.match_info["subscription_id"]
    raw = request.match_info["delivery_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "delivery_not_found", "no such delivery")
    async with request.app[DEPS].store.acquire() as conn:
        rows = [row for row in await queue.deliveries(conn, subscription_id, before=int(raw) + 1, limit=1)
                if row["delivery_id"] == int(raw)]
        if not rows:
            raise ApiError(404, "delivery_not_found", "no such delivery")
        log = await queue.attempts(conn, int(raw))
    return Reply(DeliveryDetail.model_validate({**rows[0], "attempt_log": log}))


@routes.post("/v1/webhooks/{subscription_id}/replay", "replayWebhook",
             "Send an event again, or every event of a time range (of the types the subscription takes)",
             roles=ADMINS, parameters=SUBSCRIPTION, body=ReplayRequest,
             responses={202: Answer(ReplayAccepted, "queued", headers={"Location": "the delivery log"})},
             errors={404: "`webhook_not_found`", 422: "an invalid field"})
async def replay(request: web.Request, body: ReplayRequest) -> Reply:
    subscription_id = request.match_info["subscription_id"]
    if (body.event_id is None) == (body.since is None):
        raise ApiError(422, "invalid_field", "give event_id, or since (and until)", field="event_id")
    await _secretless(request, subscription_id)
    async with request.app[DEPS].store.acquire() as conn:
        queued = await queue.replay(conn, subscription_id, event_id=body.event_id, since=body.since, until=body.until,
                                    event_types=body.event_types)
    wake = request.app.get(WEBHOOK_WAKE)
    if wake is not None:
        wake()
    return Reply(ReplayAccepted(queued=queued), status=202, location=f"/v1/webhooks/{subscription_id}/deliveries")
