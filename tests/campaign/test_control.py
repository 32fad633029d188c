"""Campaign control on a running campaign (real Asterisk): start, pause (no new dials), a
settings change picked up at once (a new pacer), resume, stop, each in the audit with who and
the values before and after; the wallboard shows the agent and the campaign; the agent's state
changes reach the CRM (occupancy is read from them)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.timeout(90)


async def _post(floor: Floor, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    response = await floor.client.post(path, json=body, headers=floor.auth(token))
    return response.status, await response.json()


async def test_pause_settings_resume_audited(floor: Floor) -> None:
    supervisor = await floor.token(TokenRole.SUPERVISOR)
    agent_id = await floor.agent("Local/sim8@agent-sim")
    agent_token = await floor.token(TokenRole.AGENT, agent_id)
    campaign_id = await floor.campaign(dial_mode="progressive")
    # Busy after a second of ringing: the agent stays ready, the campaign keeps dialing.
    await floor.leads(campaign_id, [f"+1212{700 + n}3100" for n in range(40)], state="NY")
    assert (await _post(floor, f"/v1/agents/{agent_id}/login", agent_token, {"campaign_ids": [campaign_id]}))[0] == 202
    await floor.wait_for(lambda: (s := floor.campaigns.agent_state(agent_id)) is not None and s.state.value == "ready",
                         20, "agent ready")
    status, body = await _post(floor, f"/v1/campaigns/{campaign_id}/start", supervisor)
    assert status == 202
    runner = floor.campaigns.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= 1, 10, "dialing")

    status, body = await _post(floor, f"/v1/campaigns/{campaign_id}/pause", supervisor)
    assert status == 200 and body["paused"] is True
    await floor.wait_for(lambda: not runner.calls, 10, "calls up finished")
    dials = runner.counters["dials"]
    await asyncio.sleep(1.5)  # five ticks
    assert runner.counters["dials"] == dials, "a paused campaign dialed"

    status, body = await _post(floor, f"/v1/campaigns/{campaign_id}/settings", supervisor,
                               {"dial_mode": "power", "amd_settings": {"lines_per_agent": 1.5}})
    assert status == 200 and body["dial_mode"] == "power"
    assert runner.pacer.name == "power1.5" and runner.campaign.dial_mode.value == "power"

    response = await floor.client.get("/v1/wallboard", headers=floor.auth(supervisor))
    board = await response.json()
    assert response.status == 200, board
    agent = next(row for row in board["agents"] if row["agent_id"] == agent_id)
    assert agent["state"] == "ready" and agent["seconds_in_state"] >= 0
    shown = next(row for row in board["campaigns"] if row["campaign_id"] == campaign_id)
    assert shown["running"] and shown["paused"] and shown["dial_mode"] == "power" and shown["pacer"] == "power1.5"
    assert shown["today"]["dials"] >= 1 or dials >= 1
    assert shown["leads_left"]["due"] + shown["leads_left"]["scheduled"] + shown["leads_left"]["done"] == 40

    status, body = await _post(floor, f"/v1/campaigns/{campaign_id}/resume", supervisor)
    assert status == 200 and body["paused"] is False
    await floor.wait_for(lambda: runner.counters["dials"] > dials, 10, "dialing again")
    assert (await _post(floor, f"/v1/campaigns/{campaign_id}/stop", supervisor))[0] == 200
    assert (await _post(floor, f"/v1/campaigns/{campaign_id}/pause", supervisor))[0] == 409
    assert (await _post(floor, f"/v1/agents/{agent_id}/logout", agent_token))[0] == 202
    await floor.wait_for(lambda: floor.campaigns.agent_state(agent_id) is None, 10, "logged out")

    await floor.services.outbox.flush(10)
    response = await floor.client.get(f"/v1/campaigns/{campaign_id}/changes", headers=floor.auth(supervisor))
    changes = list(reversed((await response.json())["changes"]))
    assert [change["action"] for change in changes] == ["start", "pause", "settings", "resume", "stop"]
    assert changes[2]["before"] == {"amd_settings": {"machine_action": "hangup"}, "dial_mode": "progressive"}
    assert changes[2]["after"] == {"amd_settings": {"lines_per_agent": 1.5}, "dial_mode": "power"}
    assert {change["actor_role"] for change in changes} == {"supervisor"}
    states = await floor.fetch("SELECT state, since, ended_at FROM agent_state_changes WHERE agent_id = $1 "
                               "ORDER BY since, version", agent_id)
    assert [row["state"] for row in states] == ["logging_in", "ready", "logged_out"], states
    # Each state was ended by the next one when that reached the CRM (occupancy sums these).
    assert [row["ended_at"] for row in states] == [states[1]["since"], states[2]["since"], None]
