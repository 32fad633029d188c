"""`GET /v1/agents/{agent_id}/campaigns`: the campaigns an agent's console may offer at login, read
with the agent's own token (which may not read `GET /v1/campaigns`), with only what an agent
needs: id, name, dial mode and whether each is dialing here. Real stack."""

from __future__ import annotations

from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.campaign.conftest import Floor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _send(floor: Floor, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
    response = await floor.client.request(method, path, headers=floor.auth(token))
    return response.status, await response.json()


async def test_an_agent_reads_the_campaigns_it_may_log_in_to(floor: Floor) -> None:
    agent_id = await floor.agent("Local/sim6@agent-sim")
    token = await floor.token(TokenRole.AGENT, agent_id)
    running, paused, idle = (await floor.campaign(dial_mode="progressive"), await floor.campaign(dial_mode="power"),
                             await floor.campaign(dial_mode="preview"))
    retired = await floor.campaign()
    await floor.seed_many([("campaign_upsert", {"campaign_id": retired, "name": "Retired", "active": False})])
    supervisor = await floor.token(TokenRole.SUPERVISOR)
    for campaign_id in (running, paused):
        assert (await _send(floor, "POST", f"/v1/campaigns/{campaign_id}/start", supervisor))[0] == 202
    assert (await _send(floor, "POST", f"/v1/campaigns/{paused}/pause", supervisor))[0] == 200
    try:
        got, body = await _send(floor, "GET", f"/v1/agents/{agent_id}/campaigns", token)
        assert got == 200 and body["next"] is None, body
        mine = {campaign["campaign_id"]: campaign for campaign in body["campaigns"]
                if campaign["campaign_id"] in (running, paused, idle, retired)}
        assert mine == {
            running: {"campaign_id": running, "name": "Final expense outreach", "dial_mode": "progressive",
                       "status": "running"},
            paused: {"campaign_id": paused, "name": "Final expense outreach", "dial_mode": "power",
                     "status": "paused"},
            idle: {"campaign_id": idle, "name": "Final expense outreach", "dial_mode": "preview", "status": "stopped"},
        }
        ids = [campaign["campaign_id"] for campaign in body["campaigns"]]
        assert ids == sorted(ids)
    finally:
        for campaign_id in (running, paused):
            await _send(floor, "POST", f"/v1/campaigns/{campaign_id}/stop", supervisor)

    # Only its own list; the campaigns' settings stay for staff and the CRM.
    other = await floor.agent("Local/sim5@agent-sim")
    got, body = await _send(floor, "GET", f"/v1/agents/{other}/campaigns", token)
    assert (got, body["error"]) == (403, "forbidden"), body
    assert (await _send(floor, "GET", "/v1/campaigns", token))[0] == 403
    got, body = await _send(floor, "GET", "/v1/agents/nobody-here/campaigns", supervisor)
    assert (got, body["error"]) == (404, "agent_not_found"), body
