"""`POST /v1/messages` answers 202 only once the text's queued row is durable in the outbox, so
a controller killed right after the answer still leaves the text in the CRM; an outbox that
cannot keep it is a 503, not a 202 for a text that then vanishes.

Before: the 202 was sent as soon as the text's task was started; its first row was written by
that task a moment later (here held back 1 s, as a slow disk or a SIGKILL in between would)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import OutboxError
from tests.texting.conftest import TextingDialer, phone_number

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_the_202_comes_after_the_queued_row_is_durable_and_a_refused_write_is_a_503(
        texting_dialer: TextingDialer, monkeypatch: pytest.MonkeyPatch) -> None:
    dialer = texting_dialer
    outbox = dialer.services.outbox
    campaign_id = await dialer.texting_campaign("+18885550171")
    lead_id = await dialer.consenting_lead(phone_number("571"))
    put = outbox.put
    kept: list[str] = []
    refuse = False

    async def slow_message_put(kind: str, record: Mapping[str, object]) -> int:
        if kind == RecordKind.MESSAGE:
            if refuse:
                raise OutboxError("could not write the outbox file: [Errno 28] No space left on device")
            await asyncio.sleep(1.0)
        outbox_id = await put(kind, record)
        if kind == RecordKind.MESSAGE:
            kept.append(str(record["status"]))
        return outbox_id

    monkeypatch.setattr(outbox, "put", slow_message_put)
    status, body = await dialer.post_text({"lead_id": lead_id, "campaign_id": campaign_id, "body": "Quote ready."})
    assert status == 202, body
    assert kept[:1] == ["queued"], "202 answered before the text's row was kept"

    refuse = True
    status, body = await dialer.post_text({"lead_id": lead_id, "campaign_id": campaign_id, "body": "Quote ready."})
    assert status == 503 and body["error"] == "outbox_unavailable", body
