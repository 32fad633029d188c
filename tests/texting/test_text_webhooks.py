"""An outbound text's outcomes pushed to the CRM as webhooks, on the real stack: texts through
Asterisk to the simulated carrier's phones, the gate, the outbox into PostgreSQL, and the
dispatcher of `dialer serve` POSTing to a local HTTP receiver (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from crm_bridge.store import TokenRole
from dialer.api.webhooks import WEBHOOK_EVENT_MODELS, OutboundTextEvent
from tests.texting.conftest import TextingDialer, ny, phone_number
from tests.webhook_receiver import Receiver, documented_check

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TEXT_EVENTS = ["message.sent", "message.delivered", "message.failed", "message.blocked", "message.expired",
               "message.canceled"]
# The payload docs/webhooks.md documents for every outbound text event.
TEXT_FIELDS = {"message_id", "kind", "lead_id", "agent_id", "campaign_id", "from_number", "to_number", "body",
               "encoding", "segments", "template_id", "transport", "provider_message_id", "status", "status_detail",
               "delivery_status", "delivery_error", "delivered_at", "compliance_decision_id", "requested_by",
               "created_at", "sent_at", "updated_at", "failure"}


async def test_a_sent_and_a_blocked_text_are_pushed_once_each_with_the_documented_payload(
    texting_dialer: TextingDialer,
) -> None:
    dialer = texting_dialer
    admin = await dialer.token(TokenRole.ADMIN)
    receiver = Receiver()
    await receiver.up()
    try:
        response = await dialer.client.post("/v1/webhooks", json={"url": receiver.url, "event_types": TEXT_EVENTS},
                                            headers=dialer.auth(admin))
        assert response.status == 201, await response.text()
        subscription = await response.json()
        dialer.texting.pacer.interval = 3.0  # the second text waits for its slot
        phones = [phone_number("556"), phone_number("556"), phone_number("777")]
        leads = [await dialer.consenting_lead(phone) for phone in phones]
        dialer.clock.now = ny(20, 50)
        sent = await dialer.post_text({"lead_id": leads[0], "body": "Acme Insurance: one"})
        blocked = await dialer.post_text({"lead_id": leads[1], "body": "Acme Insurance: two"})
        assert sent[0] == blocked[0] == 202
        dialer.clock.now = ny(21, 1)  # the window closes while the second waits: blocked at the recheck
        await dialer.message(blocked[1]["message_id"], until=lambda m: m.status == "blocked", within=10)
        dialer.clock.now = ny(11, 0)
        undelivered = await dialer.post_text({"lead_id": leads[2], "body": "Acme Insurance: three"})
        assert undelivered[0] == 202
        ids = {"sent": sent[1]["message_id"], "blocked": blocked[1]["message_id"],
               "undelivered": undelivered[1]["message_id"]}

        def of(message_id: str) -> list[str]:
            return [item.message["type"] for item in receiver.received
                    if item.message["data"]["message_id"] == message_id]

        await receiver.wait_for(
            lambda: "message.delivered" in of(ids["sent"]) and "message.blocked" in of(ids["blocked"])
            and "message.failed" in of(ids["undelivered"]), 30, "the texts' events")
        await asyncio.sleep(1.5)  # nothing more comes
        assert of(ids["sent"]) == ["message.sent", "message.delivered"]
        assert of(ids["blocked"]) == ["message.blocked"]
        assert of(ids["undelivered"]) == ["message.sent", "message.failed"]
        assert max(Counter(item.message["id"] for item in receiver.received).values()) == 1
        check = documented_check()
        by_type = {(item.message["data"]["message_id"], item.message["type"]): item for item in receiver.received}
        for item in by_type.values():
            assert set(item.message["data"]) == TEXT_FIELDS, item.message["type"]
            # The OpenAPI document's schema of the type (tests/api/test_webhooks.py checks every type's).
            assert WEBHOOK_EVENT_MODELS[item.message["type"]] is OutboundTextEvent
            OutboundTextEvent.model_validate_json(item.body, strict=True)
            assert check(subscription["secret"], item.headers, item.body)
        first = by_type[(ids["sent"], "message.sent")].message
        assert first["id"] == f"evt_message_sent_{ids['sent']}"
        assert (first["data"]["status"], first["data"]["body"], first["data"]["failure"]) == (
            "sent", "Acme Insurance: one Reply STOP to opt out.", None)
        assert by_type[(ids["sent"], "message.delivered")].message["data"]["delivery_status"] == "delivered"
        refused = by_type[(ids["blocked"], "message.blocked")].message
        assert refused["id"] == f"evt_message_blocked_{ids['blocked']}"
        assert (refused["data"]["status"], refused["data"]["status_detail"]) == ("blocked", "outside_calling_window")
        lost = by_type[(ids["undelivered"], "message.failed")].message["data"]
        assert (lost["status"], lost["delivery_status"], lost["failure"]) == ("sent", "undelivered", "carrier")
    finally:
        async with dialer.services.store.acquire() as conn:
            await conn.execute("DELETE FROM webhook_subscriptions WHERE url = $1", receiver.url)
        await receiver.down()
