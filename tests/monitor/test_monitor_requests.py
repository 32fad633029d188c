"""Monitor requests that must be refused (4xx with machine-readable codes), supervisors who do
not answer or are not registered (the monitor ends with a reason), stopping a monitor (the call
goes on), and the audit rows of all of them."""

from __future__ import annotations

from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.controller.conftest import Dialer
from tests.monitor.conftest import SUPERVISOR_HZ, Monitors, ari_objects, call_ended_on, nothing_left
from tests.waiting import until

pytestmark = pytest.mark.integration


async def _call(dialer: Dialer, agent: str, lead_phone: str) -> str:
    agent_id = f"{agent}-{dialer.suffix}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": f"Local/{agent}@agent-sim"})
    lead_id = await dialer.lead(lead_phone)
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call_id: str = (await response.json())["call_id"]
    return call_id


@pytest.mark.timeout(120)
async def test_bad_monitor_requests_get_4xx_naming_the_problem(dialer: Dialer) -> None:
    supervisor = await dialer.token(TokenRole.SUPERVISOR)
    admin = await dialer.token(TokenRole.ADMIN)
    agent = await dialer.token(TokenRole.AGENT, "someone")
    monitors = Monitors(dialer.client, supervisor)
    # A lead that rings until the caller gives up: the call is live but nobody is connected.
    call_id = await _call(dialer, "3001", "+17135554900")
    await until(lambda: dialer.services.controller.call_status(call_id) == "lead_ringing", 30)

    status, body = await monitors.start(call_id, "supervisor02", "listen")
    assert (status, body["error"], body["field"]) == (409, "call_not_connected", "call_id")
    for token in (agent, dialer.crm_token):
        status, body = await monitors.start(call_id, "supervisor02", "listen", token=token)
        assert (status, body["error"]) == (403, "forbidden")
        response = await dialer.client.get("/v1/calls/live", headers=monitors.auth(token))
        assert response.status == 403
    status, body = await monitors.start("call-nope", "supervisor02", "listen", token=admin)
    assert (status, body["error"]) == (404, "call_not_found")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"endpoint": "supervisor02", "mode": "spy"}, "invalid_field", "mode"),
        ({"endpoint": "supervisor02"}, "invalid_field", "mode"),
        ({"mode": "listen"}, "invalid_field", "endpoint"),
        ({"endpoint": 7, "mode": "listen"}, "invalid_field", "endpoint"),
        ({"endpoint": "PJSIP/supervisor02", "mode": "listen"}, "invalid_field", "endpoint"),
        ({"endpoint": "trunk", "mode": "listen"}, "invalid_field", "endpoint"),
        ({"endpoint": "supervisor02", "mode": "listen", "volume": 3}, "unknown_field", "volume"),
    ]
    for request, error, field in cases:
        response = await dialer.client.post(f"/v1/calls/{call_id}/monitor", json=request, headers=monitors.auth())
        got = await response.json()
        assert (response.status, got["error"], got.get("field")) == (422, error, field), (request, got)
    response = await dialer.client.post(f"/v1/calls/{call_id}/monitor", data="{nope", headers=monitors.auth())
    assert response.status == 400
    for method, path, body_ in [("GET", "/v1/monitors/mon-nope", None), ("DELETE", "/v1/monitors/mon-nope", None),
                                ("POST", "/v1/monitors/mon-nope/mode", {"mode": "barge"})]:
        response = await dialer.client.request(method, path, json=body_, headers=monitors.auth())
        assert (response.status, (await response.json())["error"]) == (404, "monitor_not_found"), path
    assert await ari_objects(dialer.asterisk, "mon-") == []  # at once: no monitor was ever made

    response = await dialer.client.post(f"/v1/calls/{call_id}/hangup", headers=dialer.auth())
    assert response.status == 202
    await dialer.ended_call(call_id)
    status, body = await monitors.start(call_id, "supervisor02", "listen")
    assert (status, body["error"]) == (409, "call_not_live")
    await nothing_left(dialer.asterisk, "call-", "mon-")


@pytest.mark.timeout(150)
async def test_unanswered_and_unregistered_supervisors_and_a_stop_leave_the_call_alone(
    dialer: Dialer, phone: Any
) -> None:
    phone("supervisor03", SUPERVISOR_HZ, auto_answer=False)
    listener = phone("supervisor04", SUPERVISOR_HZ)
    monitors = Monitors(dialer.client, await dialer.token(TokenRole.SUPERVISOR))
    call_id = await _call(dialer, "3002", "+12125551000")  # a simulated agent and a person who talks
    await until(lambda: dialer.services.controller.call_status(call_id) == "bridged", 30)

    # Rings (6 s in these tests) and is not answered.
    status, body = await monitors.start(call_id, "supervisor03", "whisper")
    assert status == 202, body
    unanswered = body["monitor_id"]
    status, body = await monitors.start(call_id, "supervisor03", "listen")
    assert (status, body["error"], body["field"]) == (409, "endpoint_busy", "endpoint")
    # No softphone registered on supervisor05: Asterisk cannot reach it.
    status, body = await monitors.start(call_id, "supervisor05", "listen")
    assert status == 202, body
    unregistered = body["monitor_id"]
    assert (await monitors.wait_ended(unregistered))["end_reason"] == "supervisor_unreachable"
    ended = await monitors.wait_ended(unanswered, within=30)
    assert ended["end_reason"] == "supervisor_no_answer" and ended["answered_at"] is None
    status, body = await monitors.mode(unanswered, "barge")
    assert (status, body["error"]) == (409, "monitor_ended")

    # A supervisor who listens, then stops: the call goes on.
    status, body = await monitors.start(call_id, "supervisor04", "listen")
    assert status == 202, body
    stopped = body["monitor_id"]
    await monitors.wait_active(stopped, "listen")
    status, body = await monitors.stop(stopped)
    assert status == 202 and body["state"] == "ending"
    assert (await monitors.wait_ended(stopped))["end_reason"] == "stopped"
    await call_ended_on(listener)
    assert dialer.services.controller.call_status(call_id) == "bridged"
    await nothing_left(dialer.asterisk, "mon-")
    status, body = await monitors.stop(stopped)
    assert (status, body["error"]) == (409, "monitor_ended")

    response = await dialer.client.post(f"/v1/calls/{call_id}/hangup", headers=dialer.auth())
    assert response.status == 202
    await dialer.ended_call(call_id)
    await nothing_left(dialer.asterisk, "call-", "mon-")

    # Every session is kept for audit, with why it ended.
    await dialer.services.outbox.flush(10)
    rows = await dialer.fetch("SELECT monitor_id, end_reason, state, supervisor_endpoint, answered_at, ended_at "
                              "FROM monitor_sessions WHERE call_id = $1 ORDER BY requested_at", call_id)
    assert [(r["monitor_id"], r["end_reason"], r["state"]) for r in rows] == [
        (unanswered, "supervisor_no_answer", "ended"), (unregistered, "supervisor_unreachable", "ended"),
        (stopped, "stopped", "ended")]
    assert rows[2]["answered_at"] is not None and all(r["ended_at"] is not None for r in rows)
    # Read back from the CRM once this controller has forgotten it.
    dialer.services.monitors.forget_ended()  # type: ignore[union-attr]
    assert (await monitors.get(stopped))["end_reason"] == "stopped"
