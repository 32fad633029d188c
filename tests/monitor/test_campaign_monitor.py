"""A supervisor monitors a campaign call: a simulated agent (its nailed-up Local leg sends
440 Hz) connected by the campaign runtime to a person of the simulated network. The supervisor
listens (hears the agent's tone and the person), then barges into the call's bridge; the person
hangs up, the monitor ends with the call, and the agent's leg stays logged in."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.campaign.agent import AgentState
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW, Floor
from tests.controller.conftest import dialer_settings, mark_lists_fresh
from tests.monitor.conftest import (
    AGENT_HZ,
    MONITOR_TUNING,
    SUPERVISOR_HZ,
    Monitors,
    call_ended_on,
    nothing_left,
    rms_without,
    tone_share,
)

pytestmark = pytest.mark.integration
PERSON = "+12125551118"  # rings 1 s, says hello, talks, hangs up 18 s after answering


@pytest.fixture
async def floor(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Floor]:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    async with dialer_services(
        settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0, lead_ring=15.0),
        drain_seconds=5, campaign_overrides=CAMPAIGN_TUNING, monitor_overrides=MONITOR_TUNING,
    ) as services:
        await mark_lists_fresh(services, GATE_NOW)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Floor(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])


@pytest.mark.timeout(150)
async def test_a_supervisor_listens_then_barges_into_a_campaign_call(floor: Floor, phone: Any) -> None:
    supervisor_phone = phone("supervisor02", SUPERVISOR_HZ)
    runtime = floor.campaigns
    monitors = Monitors(floor.client, await floor.token(TokenRole.ADMIN))
    campaign_id = await floor.campaign()
    await floor.leads(campaign_id, [PERSON], state="NY")
    agent_id = await floor.agent("Local/mon1@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.start_campaign(campaign_id)
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.ON_CALL,
                         40, "the person connected to the agent")
    await runtime.stop_campaign(campaign_id)  # one call is enough; it goes on

    [live] = [c for c in await monitors.live() if c["kind"] == "campaign"]
    assert live["agent_id"] == agent_id and live["campaign_id"] == campaign_id and live["lead_number"] == PERSON
    assert live["connected"] and live["direction"] == "outbound"
    call_id = live["call_id"]

    status, body = await monitors.start(call_id, "supervisor02", "listen")
    assert status == 202, body
    monitor_id = body["monitor_id"]
    await monitors.wait_active(monitor_id, "listen")
    await asyncio.sleep(3)  # listening; what was heard is checked below
    assert (await monitors.mode(monitor_id, "barge"))[0] == 202
    await monitors.wait_active(monitor_id, "barge")
    bridge = await floor.services.ari.get_bridge(f"{call_id}-bridge")
    assert f"{monitor_id}-sup" in bridge.channels

    # The person hangs up: the call ends, and the monitor with it.
    ended = await monitors.wait_ended(monitor_id, within=40)
    assert ended["end_reason"] == "call_ended" and ended["call_kind"] == "campaign"
    assert ended["campaign_id"] == campaign_id and ended["agent_id"] == agent_id
    await call_ended_on(supervisor_phone)
    heard = supervisor_phone.heard_files()[-1]
    assert tone_share(heard, AGENT_HZ) > 0.05, "the supervisor did not hear the agent"
    assert rms_without(heard, AGENT_HZ) > 500, "the supervisor did not hear the person"
    await nothing_left(floor.asterisk, "mon-", "cmp-")
    # The agent's nailed-up leg is untouched: wrap-up, then ready again.
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready after wrap-up")
    assert await floor.asterisk_objects("ags-")

    await floor.services.outbox.flush(10)
    [row] = await floor.fetch("SELECT * FROM monitor_sessions WHERE monitor_id = $1", monitor_id)
    assert row["call_id"] == call_id and row["end_reason"] == "call_ended" and row["campaign_id"] == campaign_id
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 10, "logged out")
    await nothing_left(floor.asterisk, "ags-", "cmp-", "mon-")
