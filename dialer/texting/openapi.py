"""The typed bodies of texting's routes (the OpenAPI document is generated from them)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field, RootModel

from crm_bridge.store import Message
from dialer.api.schema import Id, Name, PhoneText, RequestModel, ResponseModel, Text, UtcTime


class TextRequest(RequestModel):
    """Exactly one of `lead_id` or `phone`, and one of `body` or `template_id`."""

    lead_id: Id | None = None
    phone: PhoneText | None = Field(default=None, description="a US mobile-capable number, any format")
    agent_id: Id | None = Field(default=None, description="agents: their own id (the default)")
    campaign_id: Id | None = None
    body: Text | None = Field(default=None, description="the text (refused past 10 segments or 1,600 characters)")
    template_id: Id | None = None
    kind: Literal["marketing", "conversation"] | None = Field(
        default=None, description="default: conversation when the lead started one, else marketing")


class QueuedTextBody(ResponseModel):
    message_id: str
    status: str = Field(description="queued")
    kind: str
    body: str = Field(description="as it will be sent (merge fields filled, identification and opt-out wording added)")
    encoding: str = Field(description="gsm7 or ucs2")
    segments: int
    decision_id: str


class MessageBody(ResponseModel):
    """One text, sent or received (the CRM's messages row). status: queued, checking, sending, sent,
    blocked, expired, failed, canceled (outbound), received (inbound); delivery_status from the
    network's receipts: delivered, undelivered, failed."""

    message_id: str
    version: int
    direction: Literal["outbound", "inbound"]
    kind: str = Field(description="marketing, conversation, help_reply, opt_out_confirmation; inbound: opt_out, "
                                  "opt_in, help or reply")
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    from_number: str
    to_number: str
    body: str
    encoding: str
    segments: int
    template_id: str | None
    transport: str = Field(description="sip or http")
    provider_message_id: str | None
    status: str
    status_detail: str | None
    delivery_status: str | None
    delivery_error: str | None
    delivered_at: UtcTime | None
    compliance_decision_id: str | None
    requested_by: str | None
    created_at: UtcTime
    sent_at: UtcTime | None
    updated_at: UtcTime

    @classmethod
    def of(cls, message: Message) -> MessageBody:
        return cls.model_validate(asdict(message))


class PendingMessage(ResponseModel):
    """A text the dialer holds that has not reached the CRM's table yet."""

    message_id: str
    status: str


class MessageAnswer(RootModel[MessageBody | PendingMessage]):
    """A text: its CRM row, or only its state while the row is on its way."""


class LeadMessages(ResponseModel):
    lead_id: str
    messages: list[MessageBody] = Field(description="oldest first: the newest `limit` texts")


class TemplateRequest(RequestModel):
    name: Name
    body: Text = Field(description="merge fields {first_name} {last_name} {agency_name} {agency_phone} {agent_name}")


class TemplateBody(ResponseModel):
    template_id: str
    campaign_id: str
    name: str
    body: str


# The provider's webhooks post forms (its own format), signed in a header.
PROVIDER_FORM: dict[str, Any] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "additionalProperties": {"type": "string"},
    "properties": {name: {"type": "string"} for name in ("From", "To", "Body", "MessageSid", "MessageStatus",
                                                         "ErrorCode")}}}}}
