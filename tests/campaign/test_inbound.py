"""Inbound: the simulated carrier calls the agency number (the campaign's caller id); the call
enters the app, is matched to its lead by caller ID, reaches a ready agent with a screen pop
and is recorded; with no agent ready it waits with music and is connected when one is."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from dialer.ari.errors import NotFound
from dialer.ari.models import Playback
from dialer.campaign.agent import AgentState
from tests.audio import notice_match, recorded_sides
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.integration
AGENCY_NUMBER = "+18885550123"


async def _carrier_calls(floor: Floor, caller: str, behaviour: str) -> None:
    """The carrier places a call from `caller` into the agency number; the calling party then
    behaves as the simulated network's `behaviour` number (e.g. 2125551108: talks, hangs up)."""
    await floor.services.ari.originate(
        f"carrier-{uuid.uuid4().hex[:8]}", f"PJSIP/{AGENCY_NUMBER}@dialer", context="pstn-line",
        extension=behaviour, priority=1, caller_id=caller, ring_timeout=20,
    )


@pytest.mark.timeout(90)
async def test_inbound_calls_reach_a_ready_agent_or_wait_with_music(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign()  # caller id +18885550123: the agency number
    known = "+12125550177"
    leads = await floor.leads(campaign_id, [known], state="NY")
    agent_id = await floor.agent("Local/sim8@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")

    async with floor.services.agent_events.subscribe(agent_id) as events:
        await _carrier_calls(floor, known, "2125551106")  # talks, hangs up 6 s after being answered
        await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None
                             and s.state is AgentState.ON_CALL, 15, "inbound call connected")
        pops = []
        while not events.empty():
            message = events.get_nowait()
            if message["type"] == "screen_pop":
                pops.append(message)
        assert pops and pops[0]["lead"]["lead_id"] == leads[known]
        await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None
                             and s.state is not AgentState.ON_CALL, 20, "call over")

    # No agent ready: the caller waits with music, and is connected once the agent is ready.
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         10, "agent ready again")
    await runtime.pause(agent_id, "meeting")
    unknown = "+13055550188"
    await _carrier_calls(floor, unknown, "3055551120")
    await floor.wait_for(lambda: any(c.request.inbound and c.state.value == "waiting_agent"
                                     for c in runtime.calls.values()), 15, "caller waiting")
    waiting_call = next(c for c in runtime.calls.values() if c.request.inbound)
    assert runtime.queue_position(waiting_call) == 1
    playback = await _started_playback(floor, waiting_call.hold_playback)
    # "You are next in line", then hold music.
    assert playback.media_uri == "sound:queue-youarenext" and playback.state == "playing"
    await asyncio.sleep(3)  # on hold, hearing the music
    await runtime.ready(agent_id)
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None
                         and s.state is AgentState.ON_CALL, 10, "waiting caller connected")
    await floor.wait_for(lambda: not runtime.calls, 30, "second call over")

    await floor.services.outbox.flush(10)
    calls = await floor.fetch("SELECT * FROM calls WHERE campaign_id = $1 AND direction = 'inbound' "
                              "ORDER BY requested_at", campaign_id)
    assert [c["lead_number"] for c in calls] == [known, unknown]
    assert calls[0]["lead_id"] == leads[known]
    for call in calls:
        assert call["outcome"] == "answered" and call["agent_id"] == agent_id and not call["abandoned"]
        rows = await floor.recordings(call["call_id"])
        assert len(rows) == 1 and rows[0]["duration_seconds"] > 3
        # Every inbound call is told it is recorded, as the agent joins (the recording keeps it).
        sides = recorded_sides(rows[0]["storage_uri"], rows[0]["recording_id"],
                               floor.services.settings.recording_keys_dir)
        heard = [notice_match(side) for side in sides]  # the mix, then each channel
        assert max(heard) > 0.15, heard  # measured: mix 0.12-0.3, agent channel 0.6-0.73; ~0.06 without
    waited = (calls[1]["bridged_at"] - calls[1]["lead_answered_at"]).total_seconds()
    assert waited >= 2.5  # held with music until the agent became ready
    new_lead = await floor.services.store.get_lead(calls[1]["lead_id"])
    assert new_lead is not None and new_lead.phones == (unknown,) and new_lead.source == "inbound"
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 10, "logged out")
    await floor.nothing_left("ags-", "cmp-")


async def _started_playback(floor: Floor, playback_id: str) -> Playback:
    """The caller's hold playback, once started: the call is marked waiting before its runner has
    asked Asterisk to play, so the first look may come a moment too early."""
    async with asyncio.timeout(10):
        while True:
            try:
                return await floor.services.ari.get_playback(playback_id)
            except NotFound:
                await asyncio.sleep(0.1)
