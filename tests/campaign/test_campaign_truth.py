"""Campaign figures that must be true: the abandon rate the API reports is the recount of the
calls rows (during a run and after it stopped, with a safe-harbor drop and a call stopped
mid-AMD); a fresh web lead with a ready agent is dialed in predictive mode without waiting for
the pacer; a disposition ends the agent's wrap-up at once."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest

from compliance_rules.telemarketing import is_live_answer
from crm_bridge.store import TokenRole
from dialer.campaign.agent import AgentState
from dialer.campaign.record import CampaignCallState
from dialer.pacing import PacingEvent, PacingSnapshot
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.integration


class _AllAtOnce:
    """A test pacer: every queued lead at once, whatever the agents."""

    name = "all_at_once"

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del now
        return snapshot.free_lines


class _Never:
    """A test pacer that never dials: only speed-to-lead can."""

    name = "never"

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del snapshot, now
        return 0


async def _recount(floor: Floor, campaign_id: str, ended: int) -> tuple[int, int]:
    """The abandon figures recounted from the calls rows, once `ended` calls have reached them
    (call rows are written behind the call flow)."""
    for _ in range(100):
        await floor.services.outbox.flush(20)
        rows = await floor.fetch("SELECT amd_result, direction, abandoned, ended_at FROM calls WHERE campaign_id = $1",
                                 campaign_id)
        if sum(1 for row in rows if row["ended_at"] is not None) >= ended:
            break
        await asyncio.sleep(0.1)
    live = [row for row in rows if is_live_answer(row["amd_result"], inbound=row["direction"] == "inbound")]
    return len(live), sum(1 for row in live if row["abandoned"])


async def _reported(floor: Floor, campaign_id: str) -> tuple[int, int, float]:
    response = await floor.client.get(f"/v1/campaigns/{campaign_id}", headers=floor.auth())
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body["live_answers"], body["abandoned"], body["abandon_rate"]


@pytest.mark.timeout(120)
async def test_the_api_reports_the_abandon_figures_the_calls_rows_give_during_and_after_a_run(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign(dial_mode="predictive")
    quick = "+12122011104"  # a person: rings 1 s, talks 4 s
    late = "+12122021808"  # a person: rings 8 s, talks 8 s
    await floor.leads(campaign_id, [quick, late], state="NY", zip="10001")
    agent_id = await floor.agent("Local/sim21@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.pause(agent_id, "meeting")  # nobody takes the answered people: both get the safe harbor
    await runtime.start_campaign(campaign_id, pacer=_AllAtOnce())
    runner = runtime.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= 2, 20, "both dialed")

    def call_to(phone: str) -> Any:
        return next((call for call in runtime.calls.values() if call.request.phone == phone), None)

    # During the run: the first person's call is over, the other still rings.
    await floor.wait_for(lambda: runner.counters.get("abandoned_calls", 0) >= 1, 40, "the first call over")
    assert call_to(late) is not None
    live, abandoned = await _recount(floor, campaign_id, ended=1)
    assert (live, abandoned) == (1, 1)
    assert (await _reported(floor, campaign_id))[:2] == (live, abandoned)

    # Stopped while the second person's AMD listens: the call goes on (a person may be there).
    await floor.wait_for(lambda: (c := call_to(late)) is not None and c.state is CampaignCallState.ANSWERED,
                         30, "the second call answered, in AMD")
    await runtime.stop_campaign(campaign_id)
    await floor.wait_for(lambda: not runner.calls, 40, "the second call over")
    live, abandoned = await _recount(floor, campaign_id, ended=2)
    assert (live, abandoned) == (2, 2)
    reported = await _reported(floor, campaign_id)
    assert reported == (live, abandoned, pytest.approx(abandoned / live))

    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agent logged out")
    await floor.nothing_left("ags-", "cmp-")


@pytest.mark.timeout(90)
async def test_a_web_lead_is_dialed_at_once_in_predictive_mode_with_an_agent_ready(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign(dial_mode="predictive")
    await floor.seed_many([("campaign_upsert", {
        "campaign_id": campaign_id, "name": "Web leads", "caller_id": "+18885550123", "dial_mode": "predictive",
        "speed_to_lead": True})])
    agent_id = await floor.agent("Local/sim22@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    # A pacer that never opens a line: the web lead is dialed all the same, on a line of its own.
    await runtime.start_campaign(campaign_id, pacer=_Never())
    runner = runtime.campaigns[campaign_id]
    response = await floor.client.post("/v1/leads", headers=floor.auth(), json={
        "first_name": "Web", "last_name": "Lead", "phone": f"+1212{700 + uuid.uuid4().int % 200}3000",
        "source": "web_form",
        "campaign_id": campaign_id, "state": "NY"})
    body = await response.json()
    assert response.status == 201 and body["speed_to_lead"], body
    # Dialed within the request: its call exists when the answer comes back.
    assert [call.request.lead_id for call in runtime.calls.values()] == [body["lead_id"]]
    assert runner.counters["dials"] == 1
    await floor.wait_for(lambda: not runner.calls, 30, "the busy call over")
    await runtime.stop_campaign(campaign_id)
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agent logged out")


@pytest.mark.timeout(90)
async def test_a_disposition_puts_the_agent_back_to_ready_at_once(floor: Floor) -> None:
    runtime = floor.campaigns
    runtime.settings = dataclasses.replace(runtime.settings, wrap_up_seconds=120.0)
    campaign_id = await floor.campaign(dial_mode="progressive")
    person = "+12122031103"  # a person: rings 1 s, talks 3 s, hangs up
    await floor.leads(campaign_id, [person], state="NY", zip="10001")
    agent_id = await floor.agent("Local/sim23@agent-sim")
    agent_token = await floor.token(TokenRole.AGENT, agent_id)
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.start_campaign(campaign_id)
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.WRAP_UP,
                         40, "the call over, the agent in wrap-up")
    await runtime.stop_campaign(campaign_id)
    snapshot = runtime.agent_state(agent_id)
    assert snapshot is not None and snapshot.call_id is not None
    response = await floor.client.post(f"/v1/calls/{snapshot.call_id}/disposition", json={"code": "not_interested"},
                                       headers=floor.auth(agent_token))
    assert response.status == 202, await response.text()
    # Ready at once (the wrap-up timer had two minutes to run).
    state = runtime.agent_state(agent_id)
    assert state is not None and state.state is AgentState.READY
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agent logged out")
    await floor.nothing_left("ags-", "cmp-")


@pytest.mark.timeout(90)
async def test_a_campaign_call_is_hung_up_through_the_api(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign(dial_mode="progressive")
    talker = "+12122040100"  # a person who answers after 1 s and talks until the caller hangs up
    await floor.leads(campaign_id, [talker], state="NY", zip="10001")
    agent_id = await floor.agent("Local/sim24@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.start_campaign(campaign_id)
    await floor.wait_for(lambda: any(c.state is CampaignCallState.BRIDGED for c in runtime.calls.values()),
                         40, "the person connected to the agent")
    (call_id,) = list(runtime.calls)
    supervisor = await floor.token(TokenRole.SUPERVISOR)
    response = await floor.client.post(f"/v1/calls/{call_id}/hangup", headers=floor.auth(supervisor))
    assert response.status == 202, await response.text()
    await floor.wait_for(lambda: not runtime.calls, 20, "the call over")
    again = await floor.client.post(f"/v1/calls/{call_id}/hangup", headers=floor.auth(supervisor))
    assert again.status == 409 and (await again.json())["error"] == "call_not_active"
    await runtime.stop_campaign(campaign_id)
    await floor.services.outbox.flush(20)
    (row,) = await floor.fetch("SELECT outcome, hangup_cause_text, bridged_at FROM calls WHERE call_id = $1", call_id)
    assert (row["outcome"], row["hangup_cause_text"]) == ("answered", "hung up by the supervisor")
    assert row["bridged_at"] is not None
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agent logged out")
    await floor.nothing_left("ags-", "cmp-")
