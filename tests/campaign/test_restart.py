"""A controller restart: agent legs left up are taken back from Redis by the next controller,
which then runs the session as before; nothing is left behind in Asterisk. A campaign's gate
blocks of the day are read back from the stored decisions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from compliance_rules.optout import opt_out
from dialer.campaign.agent import AgentState
from dialer.campaign.dialing import campaign_lead_record
from dialer.campaign.runtime import CampaignRuntime
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import DialerServices, dialer_services
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW
from tests.controller.conftest import dialer_settings

pytestmark = pytest.mark.integration


async def _until(predicate: Callable[[], bool], within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


@pytest.mark.timeout(90)
async def test_a_restarted_controller_takes_back_live_agent_legs(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    tuning = {**CAMPAIGN_TUNING, "logout_on_shutdown": False}
    agent_id = f"sim-restart-{uuid.uuid4().hex[:6]}"
    campaign_id = f"camp-{uuid.uuid4().hex[:8]}"

    def open_dialer() -> contextlib.AbstractAsyncContextManager[DialerServices]:
        return dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(),
                               drain_seconds=3, campaign_overrides=tuning)

    async with open_dialer() as first:
        await first.outbox.put_many([
            ("agent_upsert", {"agent_id": agent_id, "name": "Sim", "sip_endpoint": "Local/sim5@agent-sim"}),
            ("campaign_upsert", {"campaign_id": campaign_id, "name": "Restart", "dial_mode": "progressive"}),
        ])
        assert await first.outbox.flush(10)
        assert first.campaigns is not None
        runtime: CampaignRuntime = first.campaigns
        await runtime.login(agent_id, [campaign_id])
        await _until(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY, 20)
        channel = runtime.agents[agent_id].channel_id
    # The first controller is gone; the agent's leg is still up in Asterisk.

    async with open_dialer() as second:
        assert second.campaigns is not None
        runtime = second.campaigns
        await _until(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY, 20)
        leg = runtime.agents[agent_id]
        assert leg.channel_id == channel and leg.session.campaign_ids == (campaign_id,)
        channels = {c.id for c in await second.ari.list_channels()}
        bridges = {b.id: b for b in await second.ari.list_bridges()}
        assert channel in channels and channel in bridges[f"{channel}-hold"].channels
        assert (await runtime.pause(agent_id, "after restart")).state is AgentState.PAUSED
        # This one logs its agents out when it stops.
        runtime.settings = dataclasses.replace(runtime.settings, logout_on_shutdown=True)
    async with open_dialer() as third:
        assert third.campaigns is not None
        assert third.campaigns.agent_state(agent_id) is None
        assert not [c.id for c in await third.ari.list_channels() if c.id.startswith("ags-")]
        assert not [b.id for b in await third.ari.list_bridges() if b.id.startswith("ags-")]


@pytest.mark.timeout(90)
async def test_todays_gate_blocks_survive_a_controller_restart(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().int % 9000 + 1000
    phones = [f"+1212{tag}{i:03d}" for i in range(4)]

    def open_dialer() -> contextlib.AbstractAsyncContextManager[DialerServices]:
        # The gate's own clock: the decisions are stamped, and counted, on the real day.
        return dialer_services(settings, timeouts=CallTimeouts(), drain_seconds=3, campaign_overrides=CAMPAIGN_TUNING)

    async with open_dialer() as first:
        items: list[tuple[str, dict[str, object]]] = [("campaign_upsert", {
            "campaign_id": campaign_id, "name": "Blocks", "caller_id": "+18885550123", "dial_mode": "progressive",
            "seller_name": "Acme Insurance", "dnc_callback_number": "+18885550199"})]
        for i, phone in enumerate(phones):
            lead_id = f"lead-{campaign_id}-{i}"
            items.append(("lead_upsert", {"lead_id": lead_id, "first_name": "Pat", "last_name": "Doe",
                                          "phones": [phone], "state": "NY", "zip": "10001"}))
            items.append(("campaign_lead", campaign_lead_record(campaign_id, lead_id)))
        await first.outbox.put_many(items)
        assert await first.outbox.flush(10)
        for phone in phones:
            await opt_out(first.dnc, phone, "api")
        assert first.campaigns is not None
        await first.campaigns.start_campaign(campaign_id)
        runner = first.campaigns.campaigns[campaign_id]
        await _until(lambda: runner.blocked["opted_out"] >= len(phones), 30)
        before = (await first.campaigns.stop_campaign(campaign_id)).blocked
        assert await first.outbox.flush(10)  # every decision is in PostgreSQL

    async with open_dialer() as second:
        assert second.campaigns is not None
        after = (await second.campaigns.start_campaign(campaign_id)).blocked
        await second.campaigns.stop_campaign(campaign_id)
    assert before["opted_out"] == len(phones)
    assert after == before
