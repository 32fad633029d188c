"""The campaign endpoints over HTTP on the real stack: agent login/pause/ready/logout, campaign
start/status/stop, and POST /v1/leads (validation, merge by enrichment, speed-to-lead with the
time from the POST to the lead's dial)."""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.integration


async def _post(floor: Floor, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    response = await floor.client.post(path, json=body or {}, headers=floor.auth(token))
    return response.status, await response.json()


@pytest.mark.timeout(100)
async def test_agent_and_campaign_endpoints_and_speed_to_lead(floor: Floor) -> None:
    agent_id = await floor.agent("Local/sim7@agent-sim")
    agent_token = await floor.token(TokenRole.AGENT, agent_id)
    campaign_id = await floor.campaign(dial_mode="progressive")
    await floor.seed_many([("campaign_upsert", {
        "campaign_id": campaign_id, "name": "Web leads", "caller_id": "+18885550123", "dial_mode": "progressive",
        "speed_to_lead": True})])

    status, body = await _post(floor, f"/v1/agents/{agent_id}/login", {"campaign_ids": [campaign_id]}, agent_token)
    assert status == 202 and body["state"] == "logging_in"
    assert (await _post(floor, f"/v1/agents/{agent_id}/login", {"campaign_ids": [campaign_id]}, agent_token))[0] == 409
    await floor.wait_for(lambda: (s := floor.campaigns.agent_state(agent_id)) is not None and s.state.value == "ready",
                         20, "agent ready")
    status, body = await _post(floor, f"/v1/agents/{agent_id}/pause", {"reason": "coffee"}, agent_token)
    assert (status, body["state"], body["pause_reason"]) == (200, "paused", "coffee")
    status, body = await _post(floor, f"/v1/agents/{agent_id}/ready", None, agent_token)
    assert (status, body["state"]) == (200, "ready")
    response = await floor.client.get(f"/v1/agents/{agent_id}/state", headers=floor.auth(agent_token))
    assert response.status == 200 and (await response.json())["state"] == "ready"

    status, body = await _post(floor, f"/v1/campaigns/{campaign_id}/start")
    assert status == 202 and body["running"] and body["pacer"] == "progressive"
    assert (await _post(floor, "/v1/campaigns/nope/start"))[0] == 404

    # Speed-to-lead: web leads (busy numbers, so the agent stays ready) are dialed within a tick.
    waits: list[float] = []
    runner = floor.campaigns.campaigns[campaign_id]
    for index in range(12):
        phone = f"+1212{300 + index}3000"
        posted = time.time()
        status, body = await _post(floor, "/v1/leads", {"first_name": "Web", "last_name": f"Lead {index}",
                                                        "phone": phone, "source": "web_form",
                                                        "campaign_id": campaign_id, "state": "NY"})
        assert status == 201 and body["speed_to_lead"], body
        await floor.wait_for(lambda n=index: runner.counters["dials"] > n, 10, "dialed")
        await floor.services.outbox.flush(10)
        rows = await floor.fetch("SELECT requested_at FROM calls WHERE lead_id = $1", body["lead_id"])
        waits.append(rows[0]["requested_at"].timestamp() - posted)
        await floor.wait_for(lambda: not runner.calls, 10, "call over")
    waits.sort()
    p50, p99 = statistics.median(waits), waits[-1]
    print(f"speed-to-lead POST -> originate: p50 {p50 * 1000:.0f} ms, max {p99 * 1000:.0f} ms over {len(waits)}")
    assert p99 < 60  # the seed's requirement; we aim for under 1 s (printed above)
    exposition = await (await floor.client.get("/metrics")).text()
    assert "dialer_speed_to_lead_seconds_count 12.0" in exposition  # each web lead's first dial, once

    status, body = await _post(floor, f"/v1/campaigns/{campaign_id}/stop")
    assert status == 200 and not body["running"] and body["counters"]["dials"] == 12
    response = await floor.client.get(f"/v1/campaigns/{campaign_id}", headers=floor.auth())
    assert response.status == 200

    status, body = await _post(floor, f"/v1/agents/{agent_id}/logout", None, agent_token)
    assert status == 202
    await floor.wait_for(lambda: floor.campaigns.agent_state(agent_id) is None, 10, "logged out")
    status, body = await _post(floor, f"/v1/agents/{agent_id}/ready", None, agent_token)
    assert (status, body["error"]) == (404, "not_logged_in")  # as GET .../state says (docs/api.md)


@pytest.mark.timeout(60)
async def test_web_leads_are_validated_and_merged_by_enrichment(floor: Floor) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"phone": "+12125550101", "source": "web"}, "first_name"),
        ({"first_name": "A", "source": "web"}, "phone"),
        ({"first_name": "A", "phone": "555-1234", "source": "web"}, "phone"),
        ({"first_name": "A", "phone": "+12125550101"}, "source"),
        ({"first_name": "A", "phone": "+12125550101", "source": "web", "email": "nope"}, "email"),
        ({"first_name": "A", "phone": "+12125550101", "source": "web", "colour": "red"}, "colour"),
        ({"first_name": "A", "phone": "+12125550101", "source": "web", "campaign_id": "nope"}, "campaign_id"),
    ]
    for body, field in cases:
        status, answer = await _post(floor, "/v1/leads", body)
        assert (status, answer.get("field")) == (422, field), (body, answer)
    agent = await floor.agent("agent1013")
    assert (await _post(floor, "/v1/leads", cases[0][0], await floor.token(TokenRole.AGENT, agent)))[0] == 403

    unique = 1000 + uuid.uuid4().int % 9000  # numbers and e-mail of this run only: the database is shared
    status, first = await _post(floor, "/v1/leads", {"first_name": "Ann", "phone": f"(212) 556-{unique}",
                                                     "source": "web", "email": f"Ann{unique}@Example.com"})
    assert status == 201 and not first["merged"]
    # Same e-mail, new phone and ZIP: enrichment (phone added, ZIP filled), nothing overwritten.
    status, second = await _post(floor, "/v1/leads", {"first_name": "Ann", "last_name": "Lee", "phone": f"+1305556{unique}",
                                                      "source": "partner", "email": f"ann{unique}@example.com", "zip": "10001"})
    assert (status, second["lead_id"], second["conflicts"], second["needs_review"]) == (200, first["lead_id"], [],
                                                                                         False)
    # Same phone, a different first name: kept out, flagged for review.
    status, third = await _post(floor, "/v1/leads", {"first_name": "Anne", "phone": f"+1212556{unique}", "source": "web"})
    assert (status, third["conflicts"], third["needs_review"]) == (200, ["first_name"], True)
    await floor.services.outbox.flush(10)
    lead = await floor.services.store.get_lead(first["lead_id"])
    assert lead is not None
    assert (lead.first_name, lead.last_name, lead.zip, lead.email) == ("Ann", "Lee", "10001", f"ann{unique}@example.com")
    assert lead.phones == (f"+1212556{unique}", f"+1305556{unique}") and lead.needs_review
    assert lead.review_reason is not None and "first_name" in lead.review_reason


@pytest.mark.timeout(60)
async def test_the_same_person_posted_at_once_becomes_one_lead(floor: Floor) -> None:
    """A web form double-submitted, or two lead vendors selling the same person at the same
    second: one lead, the other posts merged into it."""
    import asyncio

    bodies = [{"first_name": "Dee", "phone": "+14045550177", "source": f"vendor-{index}",
               **({"email": "dee@example.com"} if index % 2 else {})} for index in range(8)]
    answers = await asyncio.gather(*(_post(floor, "/v1/leads", body) for body in bodies))
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({answer["lead_id"] for _, answer in answers}) == 1
    await floor.services.outbox.flush(10)
    assert len(await floor.services.store.find_leads_by_phone("+14045550177")) == 1
    # Same e-mail, another phone, at once: still the same person.
    answers = await asyncio.gather(*(_post(floor, "/v1/leads", {
        "first_name": "Dee", "phone": f"+1404555018{index}", "source": "web", "email": "dee@example.com"})
        for index in range(4)))
    assert {answer["lead_id"] for _, answer in answers} == {answers[0][1]["lead_id"]}
