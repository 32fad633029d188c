"""A real call's webhooks: a CRM endpoint (a real HTTP server in the test) gets `call.ended` for a
click-to-call through the real Asterisk, with its outcome, times and a recording link that
serves the recording, signed so that the documented check passes; then the agent's disposition
arrives as `disposition.created` and `lead.stage_changed`, after `call.ended`, and the recording
as `recording.ready`."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from crm_bridge.store import TokenRole
from tests.controller.conftest import Dialer
from tests.webhook_receiver import Receiver, documented_check

pytestmark = pytest.mark.integration


@pytest.mark.timeout(150)
async def test_a_crm_endpoint_gets_call_ended_for_a_real_call_with_a_working_recording_link(
    dialer: Dialer, softphone_factory: Any
) -> None:
    assert dialer.services.webhooks is not None
    base = str(dialer.client.make_url("")).rstrip("/")
    dialer.services.webhooks.options.public_url = base
    softphone_factory("agent1012")
    agent_id = await dialer.agent("agent1012")
    # The simulated network: a person in Chicago, 1 s of ringing, hangs up 5 s after answering.
    lead_id = await dialer.lead("+13125551105", state="IL", zip="60601")
    campaign_id = await dialer.campaign(caller_id="+18885550123")
    admin = await dialer.token(TokenRole.ADMIN)
    agent_token = await dialer.token(TokenRole.AGENT, agent_id)
    receiver = Receiver()
    await receiver.up()
    try:
        response = await dialer.client.post("/v1/webhooks", headers=dialer.auth(admin), json={
            "url": receiver.url, "event_types": ["call.ended", "disposition.created", "recording.ready",
                                                 "lead.stage_changed"]})
        assert response.status == 201
        secret = (await response.json())["secret"]
        response = await dialer.client.post("/v1/calls", headers=dialer.auth(), json={
            "lead_id": lead_id, "agent_id": agent_id, "campaign_id": campaign_id})
        assert response.status == 202, await response.text()
        call_id = (await response.json())["call_id"]
        await dialer.ended_call(call_id)

        def ended() -> list[Any]:
            return [r for r in receiver.of_type("call.ended") if r.message["data"]["call_id"] == call_id]

        await receiver.wait_for(lambda: bool(ended()), 30, "call.ended")
        delivery = ended()[0]
        assert documented_check()(secret, delivery.headers, delivery.body)
        data = delivery.message["data"]
        assert data["outcome"] == "answered" and data["agent_id"] == agent_id and data["lead_id"] == lead_id
        assert data["lead_number"] == "+13125551105" and data["caller_id"] == "+18885550123"
        for stamp in ("requested_at", "lead_answered_at", "bridged_at", "ended_at"):
            assert data[stamp] and data[stamp].endswith("Z"), stamp
        assert data["talk_seconds"] is not None and 3.0 <= data["talk_seconds"] <= 8.0
        assert data["recording_url"] == f"{base}/v1/recordings/{data['recording_id']}/audio"

        # The link serves the recording once it is archived (recording.ready says when).
        await receiver.wait_for(lambda: any(r.message["data"]["call_id"] == call_id
                                            for r in receiver.of_type("recording.ready")), 40, "recording.ready")
        async with aiohttp.ClientSession() as session, session.get(
                data["recording_url"], headers=dialer.auth()) as audio:
            assert audio.status == 200, await audio.text()
            body = await audio.read()
        assert body[:4] in (b"RIFF", b"OggS") and len(body) > 4000  # audio, as the API serves it

        response = await dialer.client.post(f"/v1/calls/{call_id}/disposition", headers=dialer.auth(agent_token),
                                            json={"code": "appointment_set"})
        assert response.status == 202
        await receiver.wait_for(lambda: any(r.message["data"].get("call_id") == call_id
                                            for r in receiver.of_type("lead.stage_changed")), 30, "stage change")
        order = [r.message["type"] for r in receiver.received if r.message["data"].get("call_id") == call_id]
        assert order.index("call.ended") < order.index("disposition.created") < order.index("lead.stage_changed")
        disposed = receiver.of_type("disposition.created")[-1].message["data"]
        assert disposed["code"] == "appointment_set" and disposed["stage_after"] == "appt_set"
        assert len(order) == len(set(r.headers["webhook-id"] for r in receiver.received
                                     if r.message["data"].get("call_id") == call_id))
        metrics = await (await dialer.client.get("/metrics")).text()
        assert 'dialer_webhook_delivery_lag_seconds_count{event_type="call.ended"}' in metrics
        assert 'dialer_webhook_attempts_total{result="delivered"}' in metrics
    finally:
        await receiver.down()
        async with dialer.services.store.acquire() as conn:  # the run's database is shared
            await conn.execute("DELETE FROM webhook_subscriptions")
