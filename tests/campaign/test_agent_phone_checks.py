"""What a call-center admin and an agent meet when the agent's phone cannot be called (outside-in
QA): an agent is not created on a SIP endpoint Asterisk does not have, and a login on a phone that
Asterisk cannot call says why (`sip_endpoint_unknown`, `softphone_not_registered`) instead of a
502; an unknown agent is a 404 on every session endpoint, and an agent without a session is 404
`not_logged_in` on each of them. Against the real Asterisk, PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.campaign.conftest import Floor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

# An endpoint of the provisioned Asterisk that no test registers a phone on.
SILENT_ENDPOINT = "agent1016"


async def _send(floor: Floor, method: str, path: str, token: str, body: dict[str, Any] | None = None,
                ) -> tuple[int, dict[str, Any]]:
    response = await floor.client.request(method, path, json=body, headers=floor.auth(token))
    return response.status, await response.json()


async def test_an_agent_is_not_created_on_an_endpoint_asterisk_does_not_have(floor: Floor) -> None:
    admin = await floor.token(TokenRole.ADMIN)
    agent_id = f"qa-ann-{floor.suffix}"
    got, body = await _send(floor, "POST", "/v1/agents", admin,
                            {"agent_id": agent_id, "name": "Ann", "sip_endpoint": "agent9999x"})
    assert (got, body["error"], body["field"]) == (422, "sip_endpoint_unknown", "sip_endpoint"), body
    assert "PJSIP/agent9999x" in body["detail"]
    assert await floor.services.store.get_agent(agent_id) is None
    # An endpoint Asterisk has (no phone on it yet: normal while an agency sets up) is taken as is,
    # as a simulated agent's Local dial string is.
    got, body = await _send(floor, "POST", "/v1/agents", admin,
                            {"agent_id": agent_id, "name": "Ann", "sip_endpoint": SILENT_ENDPOINT})
    assert (got, body["sip_endpoint"], body["warnings"]) == (201, SILENT_ENDPOINT, []), body
    got, body = await _send(floor, "POST", "/v1/agents", admin, {
        "agent_id": f"qa-sim-{floor.suffix}", "name": "Sim", "sip_endpoint": "Local/sim9@agent-sim"})
    assert (got, body["warnings"]) == (201, []), body
    # A change to an endpoint Asterisk does not have is refused the same way, and nothing changes.
    got, body = await _send(floor, "PATCH", f"/v1/agents/{agent_id}", admin, {"sip_endpoint": "PJSIP/nobody-here"})
    assert (got, body["error"]) == (422, "sip_endpoint_unknown"), body
    agent = await floor.services.store.get_agent(agent_id)
    assert agent is not None and agent.sip_endpoint == SILENT_ENDPOINT


async def test_a_login_says_why_the_agents_phone_cannot_be_called(floor: Floor) -> None:
    campaign_id = await floor.campaign()
    login = {"campaign_ids": [campaign_id]}
    # An agent set up before endpoints were checked (or written straight into the CRM).
    stale = await floor.agent("agent9999x")
    got, body = await _send(floor, "POST", f"/v1/agents/{stale}/login", await floor.token(TokenRole.AGENT, stale), login)
    assert (got, body["error"], body["field"]) == (409, "sip_endpoint_unknown", "sip_endpoint"), body
    assert "PJSIP/agent9999x" in body["detail"]

    silent = await floor.agent(SILENT_ENDPOINT)
    token = await floor.token(TokenRole.AGENT, silent)
    got, body = await _send(floor, "POST", f"/v1/agents/{silent}/login", token, login)
    assert (got, body["error"]) == (409, "softphone_not_registered"), body
    assert f"PJSIP/{SILENT_ENDPOINT}" in body["detail"]
    # Not left half logged in: the agent may try again once the phone is up.
    await floor.wait_for(lambda: floor.campaigns.agent_state(silent) is None, 10, "the failed session gone")
    got, body = await _send(floor, "GET", f"/v1/agents/{silent}/state", token)
    assert (got, body["error"]) == (404, "not_logged_in"), body
    await floor.nothing_left("ags-")


@pytest.mark.parametrize(("method", "action", "body"), [
    ("GET", "state", None), ("POST", "pause", {"reason": "lunch"}), ("POST", "ready", None),
    ("POST", "logout", None),
])
async def test_every_session_endpoint_says_the_same_of_an_agent_without_a_session(
        floor: Floor, method: str, action: str, body: dict[str, Any] | None) -> None:
    supervisor = await floor.token(TokenRole.SUPERVISOR)
    agent_id = await floor.agent("Local/sim8@agent-sim")
    got, answer = await _send(floor, method, f"/v1/agents/{agent_id}/{action}", supervisor, body)
    assert (got, answer["error"]) == (404, "not_logged_in"), answer  # pause/ready/logout were 409
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    got, answer = await _send(floor, method, f"/v1/agents/{nobody}/{action}", supervisor, body)
    assert (got, answer["error"], answer["field"]) == (404, "agent_not_found", "agent_id"), answer


async def test_a_login_for_an_unknown_agent_is_a_404(floor: Floor) -> None:
    campaign_id = await floor.campaign()
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    got, body = await _send(floor, "POST", f"/v1/agents/{nobody}/login", await floor.token(TokenRole.SUPERVISOR),
                            {"campaign_ids": [campaign_id]})
    assert (got, body["error"], body["field"]) == (404, "agent_not_found", "agent_id"), body  # was 422
