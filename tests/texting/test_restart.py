"""A 202 means the text will arrive: texts a SIGKILLed controller left unfinished are taken up
by the next one at start. A `queued` text (never handed over) is sent after the gate allows it
again, exactly once; a text the gate now refuses (an opt-out while the controller was down) is
`blocked`; a `sending` text (it may have reached the carrier) is never sent again but closed
`failed` with `unknown_delivery`.

Before: all three stayed `queued`/`sending` in the CRM forever.

The first controller carries texts through a provider that takes the first text and never
answers (the text stays `sending`), at one segment per 100 s (the next texts stay `queued`);
the restarted one carries them through Asterisk to the simulated phones."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crm_bridge.kinds import RecordKind
from crm_bridge.migrate import ensure_schema
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore, Message, TokenRole
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from dialer.runtime.reconcile import outbox_delivered
from dialer.texting.machine import UNKNOWN_DELIVERY
from tests.controller.conftest import dialer_settings
from tests.support.child_dialer import ChildDialer, api_headers, child_environment
from tests.texting.conftest import PEWC, FakeProvider, PhoneLogLine, phone_number
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def received(asterisk: AsteriskInstance, phone: str) -> list[PhoneLogLine]:
    path = asterisk.texts_dir / f"{phone}.log"
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        at, direction, peer, message_id, body = raw.split("|", 4)
        if direction == "received":
            lines.append(PhoneLogLine(int(at), direction, peer, message_id, body))
    return lines


async def test_texts_left_queued_are_sent_once_and_left_sending_are_closed_after_a_kill(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    env = child_environment(settings, tmp_path / "state", tmp_path / "recordings", free_local_port(),
                            tmp_path / "cache")
    suffix = uuid.uuid4().hex[:8]
    sender = f"+1888555{uuid.uuid4().int % 10000:04d}"
    campaign_id, phones = f"camp-{suffix}", [phone_number("776") for _ in range(3)]
    lead_ids = [f"lead-{suffix}-{n}" for n in range(3)]
    async with FakeProvider(silent=True) as provider:
        first = ChildDialer({**env, **provider.settings(), "DIALER_TEXTING_RATE": "0.01"}, tmp_path / "child.log")
        await first.start()
        headers = await api_headers(pg_dsn, TokenRole.CRM, "texts-restart")
        message_ids = []
        try:
            # (after the start: the controller applies the CRM schema)
            async with Outbox(tmp_path / "seed", pg_dsn, name="seed") as seed:
                await seed.put("campaign_upsert", {
                    "campaign_id": campaign_id, "name": "Restart", "caller_id": sender, "dial_mode": "preview",
                    "seller_name": "Acme Insurance", "dnc_callback_number": sender})
                for lead_id, phone in zip(lead_ids, phones, strict=True):
                    await seed.put("lead_upsert", {
                        "lead_id": lead_id, "first_name": "Dana", "phones": [phone], "state": "NY", "zip": "10001",
                        "consents": [{**PEWC[0], "consent_id": f"pewc-{uuid.uuid4().hex[:8]}", "phone": phone}]})
                assert await seed.flush(10)
            async with aiohttp.ClientSession() as session:
                for lead_id in lead_ids:
                    async with session.post(f"{first.url}/v1/messages", headers=headers, json={
                            "lead_id": lead_id, "campaign_id": campaign_id, "body": "Your quote is ready."}) as response:
                        assert response.status == 202, await response.text()
                        message_ids.append((await response.json())["message_id"])
            await until(lambda: len(provider.requests) == 1, 20, 0.05)
        finally:
            first.kill()
        assert provider.requests == [phones[0]]

    # The third lead opts out while no controller runs: the gate must see it at send time.
    store = await CrmStore.open(pg_dsn)
    try:
        async with Outbox(tmp_path / "seed", pg_dsn, name="seed") as seed:
            await seed.put("opt_out", {"opt_out_id": f"oo-{suffix}", "phone": phones[2], "source": "api",
                                       "lead_id": lead_ids[2], "call_id": None, "created_at": datetime.now(UTC)})
            assert await seed.flush(10)

        second = ChildDialer(dict(env), tmp_path / "child.log")
        await second.start()
        try:
            async def final(message_id: str) -> Message | None:
                row = await store.get_message(message_id)
                return row if row is not None and row.status in ("sent", "failed", "blocked", "expired") else None

            rows: list[Any] = [None, None, None]

            async def all_final() -> bool:
                for n, message_id in enumerate(message_ids):
                    rows[n] = await final(message_id)
                return all(rows)

            await until(all_final, 30, 0.2)
            left_sending, left_queued, opted_out = rows
            assert left_sending.status == "failed", left_sending
            assert left_sending.status_detail.startswith(UNKNOWN_DELIVERY)
            assert left_queued.status == "sent", left_queued
            assert opted_out.status == "blocked" and "opted_out" in (opted_out.status_detail or ""), opted_out
            await until(lambda: len(received(asterisk, phones[1])) >= 1, 10, 0.05)
            await asyncio.sleep(2.0)  # time for a second copy, were one to go
            assert [line.message_id for line in received(asterisk, phones[1])] == [message_ids[1]]
            assert received(asterisk, phones[0]) == [] and received(asterisk, phones[2]) == []
            assert "text_left_sending_closed" in second.text() and "text_left_queued_again" in second.text()
            # Each outcome is a webhook event (written whether or not anyone subscribes), once.
            async with store.acquire() as conn:
                events = await conn.fetch("SELECT subject, event_type, payload FROM webhook_events "
                                          "WHERE subject = ANY($1::text[]) ORDER BY seq", message_ids)
            types = [[row["event_type"] for row in events if row["subject"] == message_id]
                     for message_id in message_ids]
            assert types[0] == ["message.failed"] and types[2] == ["message.blocked"], types
            assert types[1] in (["message.sent"], ["message.sent", "message.delivered"]), types
            closed = json.loads(next(row["payload"] for row in events if row["subject"] == message_ids[0]))
            assert closed["status_detail"].startswith(UNKNOWN_DELIVERY) and closed["failure"] == "dialer"
        finally:
            second.stop()
    finally:
        await store.close()


@pytest.mark.timeout(30)
async def test_the_take_up_waits_for_the_dead_process_s_text_records_to_reach_postgresql(
        pg_dsn: str, tmp_path: Path) -> None:
    """A `sending` snapshot still only in the outbox (PostgreSQL had not taken it when the
    controller died) must reach the CRM before its row is read, or the text would be read as
    `queued` and sent twice: the take-up waits for it, and gives up (to retry) while PostgreSQL
    does not answer."""
    record = {"message_id": f"msg-wait-{uuid.uuid4().hex[:8]}", "version": 2, "direction": "outbound",
              "kind": "marketing", "lead_id": None, "agent_id": None, "campaign_id": None,
              "from_number": "+18885550100", "to_number": "+12125550142", "body": "Hi", "encoding": "gsm7",
              "segments": 1, "template_id": None, "transport": "sip", "provider_message_id": None,
              "status": "sending", "status_detail": None, "compliance_decision_id": None, "requested_by": None,
              "created_at": datetime.now(UTC), "sent_at": None}
    await ensure_schema(pg_dsn)
    nowhere = f"postgresql://postgres@127.0.0.1:{free_local_port()}/nowhere"
    async with Outbox(tmp_path / "dead", nowhere, name="crm") as dead:
        await dead.put(RecordKind.MESSAGE, record)
    with pytest.raises(TimeoutError):
        await outbox_delivered(tmp_path / "dead", "crm", RecordKind.MESSAGE, within=0.5)
    async with Outbox(tmp_path / "dead", pg_dsn, name="crm"):
        await outbox_delivered(tmp_path / "dead", "crm", RecordKind.MESSAGE, within=10)
    store = await CrmStore.open(pg_dsn)
    try:
        row = await store.get_message(str(record["message_id"]))
    finally:
        await store.close()
    assert row is not None and row.status == "sending"
