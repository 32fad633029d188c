"""One controller driving both nodes of the cluster (`[[nodes]]`, docs/cluster.md).

A progressive campaign with four simulated agents: the agents' legs are spread over the two
nodes, and the campaign's calls go to the node holding a ready agent (a bridge joins channels
of one node), so calls are carried by both nodes. Node 2 is killed (SIGKILL) mid-campaign: its calls end
(`node_lost`) and their rows are closed, its agents are logged out, and the campaign goes on
on node 1 only; at the end every row of the campaign is closed, once, and no lead was dialed
while another call to it was live.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.campaign.agent import AgentState
from dialer.campaign.record import CampaignCallState
from dialer.click_to_call.machine import CallTimeouts
from dialer.runtime.placement import NODE_LOST, Placement
from dialer.serve import dialer_services
from dialer.settings import AriNode
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW, Floor
from tests.cluster.conftest import ClusterUnderTest
from tests.controller.conftest import dialer_settings, mark_lists_fresh

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(180)]


@pytest.fixture
async def floor_on_two_nodes(cluster: ClusterUnderTest, pg_dsn: str, redis_url: str, redis_prefix: str,
                             tmp_path: Path) -> AsyncIterator[Floor]:
    first = cluster.nodes[0]
    nodes = tuple(AriNode(f"node{index}", node.ari_url, node.config.ari_user, node.config.ari_password)
                  for index, node in enumerate(cluster.nodes, start=1))
    settings = dataclasses.replace(dialer_settings(first, pg_dsn, redis_url, redis_prefix, tmp_path), nodes=nodes)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0),
                               drain_seconds=5, campaign_overrides=CAMPAIGN_TUNING) as services:
        await mark_lists_fresh(services, GATE_NOW)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Floor(services, client, first, pg_dsn, crm, uuid.uuid4().hex[:6])


async def test_a_campaign_runs_on_both_nodes_and_goes_on_on_one_when_the_other_stops(
        cluster: ClusterUnderTest, floor_on_two_nodes: Floor) -> None:
    floor = floor_on_two_nodes
    runtime = floor.campaigns
    placement = floor.services.calls.services.placement
    assert isinstance(placement, Placement)
    campaign_id = await floor.campaign(dial_mode="progressive")
    # People in New York: 1 s of ringing, 25 s of talk (calls are up when the node stops).
    exchange = 500 + int(uuid.uuid4().hex[:4], 16) % 470
    people = [f"+1212{exchange + n}1125" for n in range(24)]
    await floor.leads(campaign_id, people, state="NY", zip="10001")
    agents = [await floor.agent(f"Local/sim{n}@agent-sim") for n in range(1, 5)]
    for agent_id in agents:
        await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: all(
        (s := runtime.agent_state(a)) is not None and s.state is AgentState.READY for a in agents), 30, "agents ready")
    agent_nodes = Counter(placement.node_of(runtime.agents[a].channel_id) for a in agents)
    assert agent_nodes == {"node1": 2, "node2": 2}, agent_nodes

    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]

    def bridged_on() -> set[str | None]:
        return {placement.node_of(call_id) for call_id, call in list(runner.calls.items())
                if call.state is CampaignCallState.BRIDGED}

    await floor.wait_for(lambda: bridged_on() == {"node1", "node2"}, 60, "calls bridged on both nodes")
    on_node2 = {call_id for call_id in runner.calls if placement.node_of(call_id) == "node2"}

    # Node 2 dies (SIGKILL: no hang-up, no event says what became of its calls).
    pid = cluster.nodes[1].pid()
    assert pid is not None
    stopped_at = time.time()
    os.kill(pid, signal.SIGKILL)
    try:
        # Node 2's calls end and its agents are logged out, within seconds.
        await floor.wait_for(lambda: not on_node2 & set(runner.calls), 20, "node 2's calls ended")
        await floor.wait_for(lambda: len(runtime.agents) == 2, 20, "node 2's agents logged out")
        given_up = time.time() - stopped_at
        exposition = await (await floor.client.get("/metrics")).text()
        assert 'dialer_node_connected{node="node1"} 1.0' in exposition
        assert 'dialer_node_connected{node="node2"} 0.0' in exposition
        # The campaign goes on on node 1: new calls, all of them there.
        dials = runner.counters["dials"]
        await floor.wait_for(lambda: runner.counters["dials"] >= dials + 2, 60, "new dials after the stop")
        after = [call_id for call_id in runner.calls if call_id not in on_node2]
        assert {placement.node_of(call_id) for call_id in after} <= {"node1"}
        await runtime.stop_campaign(campaign_id)
        for agent_id in list(runtime.agents):
            await runtime.logout(agent_id)
        await floor.wait_for(lambda: not runner.calls and not runtime.agents, 40, "calls over, agents out")
    finally:
        await asyncio.to_thread(cluster.nodes[1].stop)  # reaps the killed process
        await asyncio.to_thread(cluster.nodes[1].start)

    await floor.services.outbox.flush(20)
    rows = await floor.fetch("SELECT * FROM calls WHERE campaign_id = $1", campaign_id)
    assert len(rows) == len({row["call_id"] for row in rows}) >= 4
    assert all(row["ended_at"] is not None and row["outcome"] is not None for row in rows), rows
    # Node 2's calls that were up end with the node as their cause (one still being set up as
    # the node died may end first with its originate's failure: closed all the same).
    lost = [row for row in rows if row["call_id"] in on_node2 and row["bridged_at"] is not None]
    assert lost and all(row["hangup_cause_text"] == NODE_LOST for row in lost), \
        [(row["hangup_cause_text"], row["outcome"]) for row in lost]
    # Calls placed after the stop were all on node 1.
    later = [row for row in rows if row["requested_at"].timestamp() > stopped_at + given_up]
    assert later and all(placement.node_of(row["call_id"]) == "node1" for row in later)
    # No lead dialed while another call to it was live.
    by_lead: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        by_lead.setdefault(row["lead_number"], []).append(
            (row["requested_at"].timestamp(), row["ended_at"].timestamp()))
    for spans in by_lead.values():
        spans.sort()
        assert all(later_start >= earlier_end for (_, earlier_end), (later_start, _) in itertools.pairwise(spans))
    await floor.nothing_left("ags-", "cmp-")
