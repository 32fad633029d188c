"""Two Asterisk nodes behind the Kamailio edge (docs/cluster.md), with real SIP phones.

- A desk phone (baresip) registers at the edge with its endpoint's generated credential; a
  wrong password is refused (403) and the phone is not registered.
- A call originated through ARI on node 1, and another on node 2, both ring that phone through
  the edge and are answered; audio flows both ways (what the phone heard, and what the node
  recorded from the phone).
- The whole dialer, driving node 2, connects a click-to-call: the agent's phone at the edge
  rings and answers, the lead (node 2's simulated network) answers, they are bridged and recorded.
- An agent whose phone is not registered at the edge: the call ends before the lead is dialed.
- A carrier's call enters through the edge's dispatcher and lands on a node; when that node
  stops, calls sent at once all land on the other (the one sent to the stopped node moves after
  2 s), the edge marks the node down within seconds, and back up when it starts again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from dialer.ari.client import AriClient, AriConfig
from dialer.ari.models import StasisStart
from dialer.provision.asterisk import AsteriskInstance
from tests.audio import analyse_wav
from tests.cluster.conftest import CarrierPhone, ClusterUnderTest, NodeApp, dialer_driving
from tests.conftest import RUN_ID
from tests.controller.conftest import Dialer
from tests.softphone import SOURCE_TONE_HZ, Softphone
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(120)]

DID = "+13125550142"  # any number: the nodes' from-carrier dialplan hands every call to the app


@pytest.fixture
def phone_at_edge(cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Callable[..., Softphone]]:
    phones: list[Softphone] = []

    def start(endpoint: str, password: str | None = None, timeout: float = 8.0) -> Softphone:
        secret = password if password is not None else cluster.nodes[0].sip_credentials(endpoint).password
        phone = Softphone(tmp_path_factory.mktemp(endpoint), endpoint, secret, cluster.edge.config.sip_port)
        phones.append(phone)
        phone.start(timeout=timeout)
        return phone

    yield start
    for phone in phones:
        phone.stop()


def ari_config(node: AsteriskInstance) -> AriConfig:
    return AriConfig(node.ari_url, node.config.ari_user, node.config.ari_password, "cluster-test")


async def test_a_phone_registers_at_the_edge_with_its_own_credential_and_a_wrong_one_is_refused(
        cluster: ClusterUnderTest, phone_at_edge: Callable[..., Softphone]) -> None:
    phone_at_edge("agent1001")
    assert cluster.edge.registered("agent1001")
    with pytest.raises(RuntimeError, match="did not register"):
        phone_at_edge("agent1002", password="not-the-password", timeout=3.0)
    assert not cluster.edge.registered("agent1002")
    assert "registration refused for agent1002" in cluster.edge.log_file.read_text()
    # The nodes never saw the phone: they reach it through the edge (its static contact).
    contacts = cluster.nodes[0].cli("pjsip show aor agent1001")
    assert f"sip:agent1001@127.0.0.1:{cluster.edge.config.sip_port}" in contacts


async def test_calls_from_both_nodes_ring_the_agent_through_the_edge(
        cluster: ClusterUnderTest, phone_at_edge: Callable[..., Softphone]) -> None:
    phone = phone_at_edge("agent1003")
    for number, node in enumerate(cluster.nodes, start=1):
        channel_id = f"cluster-{RUN_ID}-agent-{number}"
        async with AriClient(ari_config(node)) as ari:
            await ari.originate(channel_id, "PJSIP/agent1003", context="softphone-check", extension="s", priority=1,
                                variables={"CHECK_SECONDS": "3"})
        await asyncio.to_thread(phone.wait_for_call_end, number, 20.0)
        heard = phone.last_heard()
        assert not heard.silent and heard.voiced_fraction > 0.5, f"the phone heard nothing from {node.config.name}"
        # What the node received from the phone: its 440 Hz tone.
        recorded = node.checks_dir / f"{channel_id}-heard.wav"
        await until(lambda path=recorded: path.exists() and path.stat().st_size > 8000, within=10)
        report = analyse_wav(recorded)
        assert not report.silent and abs(report.dominant_hz - SOURCE_TONE_HZ) < 15, report
        assert "edge: agent1003 rings at" in cluster.edge.log_file.read_text()
        assert f"(call from node 127.0.0.1:{node.config.sip_port})" in cluster.edge.log_file.read_text()
    assert phone.answered_calls() == 2


@pytest.fixture
async def dialer_on_node_2(cluster: ClusterUnderTest, pg_dsn: str, redis_url: str, redis_prefix: str,
                           tmp_path: Path) -> AsyncIterator[Dialer]:
    """`dialer serve`'s services driving node 2's ARI, as with a single node."""
    async with dialer_driving(cluster.nodes[1], pg_dsn, redis_url, redis_prefix, tmp_path, agent_ring=8.0) as dialer:
        yield dialer


async def test_the_dialer_on_node_2_connects_a_click_to_call_to_an_agent_at_the_edge(
        cluster: ClusterUnderTest, dialer_on_node_2: Dialer, phone_at_edge: Callable[..., Softphone]) -> None:
    dialer = dialer_on_node_2
    phone = phone_at_edge("agent1004")
    agent_id = await dialer.agent("agent1004")
    # The simulated network: a person in New York, 2 s of ringing, hangs up 6 s after answering.
    lead_id = await dialer.lead("+12125551206", state="NY", zip="10001")
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id,
                                                           "campaign_id": await dialer.campaign()},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call = await dialer.ended_call((await response.json())["call_id"], within=60)
    assert call.outcome is not None and call.outcome.value == "answered"
    assert call.bridged_at is not None and call.recording_id is not None
    heard = phone.last_heard()
    assert not heard.silent and heard.voiced_fraction > 0.2
    log = cluster.edge.log_file.read_text()
    assert "agent1004 rings at sip:agent1004" in log
    assert f"(call from node 127.0.0.1:{dialer.asterisk.config.sip_port})" in log
    await dialer.nothing_left()


async def test_an_agent_whose_phone_is_not_at_the_edge_ends_the_call_before_the_lead_is_dialed(
        cluster: ClusterUnderTest, dialer_on_node_2: Dialer) -> None:
    dialer = dialer_on_node_2
    assert not cluster.edge.registered("agent1009")
    agent_id = await dialer.agent("agent1009")
    lead_id = await dialer.lead("+12125551209")
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call = await dialer.ended_call((await response.json())["call_id"], within=30)
    # The edge answers 480 for a phone it has no registration of: the agent leg fails at once,
    # the lead is never dialed, as when a single node has no contact for the agent.
    assert call.outcome is not None and call.outcome.value == "agent_no_answer"
    assert call.lead_ringing_at is None and call.agent_answered_at is None
    assert "agent1009 is not registered" in cluster.edge.log_file.read_text()
    await dialer.nothing_left()


async def _lands(apps: list[NodeApp], within: float = 15.0) -> tuple[NodeApp, StasisStart]:
    """The node whose app the next call enters, and its StasisStart."""
    waits = {asyncio.create_task(app.arrived.get()): app for app in apps}
    try:
        done, _ = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise AssertionError(f"the carrier's call entered no node within {within} s")
        task = done.pop()
        return waits[task], task.result()
    finally:
        for task in waits:
            task.cancel()


async def _answer_and_end(app: NodeApp, event: StasisStart, carrier: CarrierPhone) -> None:
    assert event.args[:2] == ("inbound", DID)
    await app.ari.answer(event.channel.id)
    await until(lambda: "Call established" in carrier.log_text(), within=10)
    await app.ari.hangup(event.channel.id)


async def test_a_carriers_call_is_dispatched_to_a_node_and_to_the_other_when_that_node_stops(
        cluster: ClusterUnderTest, node_apps: list[NodeApp], carrier_phones: list[CarrierPhone]) -> None:
    edge_address = cluster.edge.config.edge
    await until(lambda: all(flags.startswith("A") for flags in cluster.edge.node_states().values()), within=10)
    caller = carrier_phones[0]
    caller.dial(DID, edge_address, seconds=20)
    first, event = await _lands(node_apps)
    await _answer_and_end(first, event, caller)
    caller.stop()

    stopped = first.node
    node_uri = f"sip:127.0.0.1:{stopped.config.sip_port}"
    await asyncio.to_thread(stopped.stop)
    started = time.monotonic()
    # Two calls at once, before the probes notice: round robin sends one of them to the stopped
    # node, which does not answer; the edge moves it to the other node after 2 s.
    survivors = [app for app in node_apps if app is not first]
    for phone in carrier_phones:
        phone.dial(DID, edge_address, seconds=20)
    for _ in carrier_phones:
        landed, event = await _lands(survivors, within=10)
        assert landed.node is not stopped
        await landed.ari.answer(event.channel.id)
    # Both answered: the first caller's second call, the other caller's first.
    await until(lambda: [phone.log_text().count("Call established") for phone in carrier_phones] == [2, 1],
                within=10)
    assert time.monotonic() - started < 5.0
    await until(lambda: cluster.edge.node_states()[node_uri].startswith("I"), within=5)
    marked_down = time.monotonic() - started
    assert marked_down < 5.0, f"the edge took {marked_down:.1f} s to mark the stopped node down"
    for phone in carrier_phones:
        phone.stop()

    await asyncio.to_thread(stopped.start)
    await until(lambda: cluster.edge.node_states()[node_uri].startswith("A"), within=10)
