"""Agent sessions on nailed-up legs against the real Asterisk: a baresip softphone and a
simulated Local-channel agent log in, sit in their holding bridges, pause, and log out; a
softphone that hangs up ends its session cleanly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dialer.campaign.agent import AgentState
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.integration


@pytest.mark.timeout(90)
async def test_agents_log_in_pause_and_log_out_and_a_dropped_softphone_ends_its_session(
    floor: Floor, softphone_factory: Any, redis_client: Any
) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign()
    phone = softphone_factory("agent1011")
    soft_agent = await floor.agent("agent1011")
    sim_agent = await floor.agent("Local/sim1@agent-sim")
    states: list[str] = []
    async with floor.services.agent_events.subscribe(soft_agent) as queue:
        await runtime.login(soft_agent, [campaign_id])
        await runtime.login(sim_agent, [campaign_id])
        await floor.wait_for(lambda: all(
            (s := runtime.agent_state(a)) is not None and s.state is AgentState.READY for a in (soft_agent, sim_agent)
        ), 20, "both agents ready")
        # Each sits alone in its own holding bridge.
        bridges = await floor.asterisk_objects("ags-")
        assert sum(1 for b in bridges if b.endswith("-hold")) == 2
        saved = await redis_client.hgetall(f"{floor.services.settings.redis_prefix}agents")
        assert {json.loads(v)["state"] for v in saved.values()} == {"ready"}

        paused = await runtime.pause(sim_agent, "lunch")
        assert paused.state is AgentState.PAUSED and paused.pause_reason == "lunch"
        assert (await runtime.ready(sim_agent)).state is AgentState.READY

        phone.stop()  # the softphone goes away mid-session
        await floor.wait_for(lambda: runtime.agent_state(soft_agent) is None, 20, "softphone agent logged out")
        while not queue.empty():
            states.append(queue.get_nowait()["state"])
    assert states[0] == "logging_in" and "ready" in states and states[-1] == "logged_out"

    await runtime.logout(sim_agent)
    await floor.wait_for(lambda: runtime.agent_state(sim_agent) is None, 10, "simulated agent logged out")
    await floor.nothing_left("ags-")
    assert await redis_client.hgetall(f"{floor.services.settings.redis_prefix}agents") == {}
