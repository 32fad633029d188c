"""A click-to-call whose agent's phone Asterisk cannot call says why, as a login does
(`why_phone_unreachable`, asked after the refusal): the call's CRM row and the agent's
`call_state` message name `softphone_not_registered` instead of a bare "Allocation failed".
Against the real Asterisk, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.campaign.conftest import Floor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

# An endpoint of the provisioned Asterisk that no test registers a phone on.
SILENT_ENDPOINT = "agent1016"


async def _ended_message(queue: asyncio.Queue[dict[str, Any]], call_id: str) -> dict[str, Any]:
    while True:
        message = await queue.get()
        if message.get("type") == "call_state" and message["call_id"] == call_id and message["state"] == "ended":
            return message


async def test_a_call_for_an_agent_whose_phone_is_not_registered_says_so(floor: Floor) -> None:
    campaign_id = await floor.campaign()
    agent_id = await floor.agent(SILENT_ENDPOINT)
    phone = f"+1212555{uuid.uuid4().int % 10000:04d}"  # New York: inside the calling window
    lead_id = (await floor.leads(campaign_id, [phone]))[phone]
    token = await floor.token(TokenRole.AGENT, agent_id)
    async with floor.services.agent_events.subscribe(agent_id) as queue:
        response = await floor.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                           headers=floor.auth(token))
        accepted = await response.json()
        assert response.status == 202, accepted
        call_id = accepted["call_id"]
        async with asyncio.timeout(20):
            message = await _ended_message(queue, call_id)
    assert (message["outcome"], message["problem"]) == ("originate_failed", "softphone_not_registered"), message

    async def row() -> dict[str, Any]:
        answer = await floor.client.get(f"/v1/calls/{call_id}", headers=floor.auth(token))
        return dict(await answer.json()) if answer.status == 200 else {}

    async with asyncio.timeout(20):
        while (call := await row()).get("outcome") is None:
            await floor.services.outbox.flush(5)
            await asyncio.sleep(0.2)
    assert (call["outcome"], call["hangup_cause_text"], call["hangup_cause"]) == (
        "failed", "softphone_not_registered", None), call
    assert call["lead_ringing_at"] is None  # the lead was never dialed
    await floor.nothing_left(call_id)
