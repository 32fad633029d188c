"""A browser phone registered at the cluster's Kamailio edge (docs/cluster.md) takes the dialer's call.

Two Asterisk nodes behind the edge, which carries SIP over WebSocket (`EdgeConfig.ws_port`, as
`dialer stack up --nodes N` renders it). The browser endpoint's credentials name the edge's
WebSocket URL; headless Chromium registers there; the dialer's services, driving node 2, place a
click-to-call to an agent whose phone is that browser endpoint: node 2 rings it through the
edge (UDP to the edge, WebSocket to the page), the page answers, the lead (node 2's simulated
network) answers, they are bridged and recorded; the page's fake microphone is found in the
call's recording. Media (DTLS-SRTP, ICE) flows between the page and node 2, not through the edge.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.audio import recorded_sides
from tests.browser.conftest import MICROPHONE_WAV
from tests.browser.phone import BrowserPhone
from tests.browser.test_webrtc_phone import HEARD, best_stretch
from tests.cluster.conftest import ClusterUnderTest, dialer_driving, running_cluster
from tests.controller.conftest import Dialer

pytestmark = [pytest.mark.cluster]

AGENT = "agent1005-web"


@pytest.fixture(scope="module")
def edge_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    with running_cluster(tmp_path_factory, tag="webedge") as under_test:
        yield under_test


@pytest.fixture
async def dialer_on_node_2(edge_cluster: ClusterUnderTest, pg_dsn: str, redis_url: str, redis_prefix: str,
                           tmp_path: Path) -> AsyncIterator[Dialer]:
    """`dialer serve`'s services driving node 2's ARI."""
    async with dialer_driving(edge_cluster.nodes[1], pg_dsn, redis_url, redis_prefix, tmp_path, agent_ring=10.0) as dialer:
        yield dialer


@pytest.mark.timeout(120)
async def test_a_browser_phone_at_the_edge_takes_the_dialers_call_and_its_voice_is_recorded(
        edge_cluster: ClusterUnderTest, dialer_on_node_2: Dialer, phone: BrowserPhone) -> None:
    dialer = dialer_on_node_2
    edge = edge_cluster.edge
    login = dialer.asterisk.sip_credentials(AGENT)
    # The console is given the edge's WebSocket, not the node's own.
    assert login.ws_url == edge.config.ws_url == f"ws://127.0.0.1:{edge.config.ws_port}/ws"
    await phone.start(login, auto_answer=True)
    status = await phone.wait_for("registration", "registered", "failed")
    assert status["registration"] == "registered", status
    assert edge.registered(AGENT)

    agent_id = await dialer.agent(AGENT)
    # The simulated network: a person who answers after 1 s, says hello and stays silent for
    # 10 s (behaviour 9), so the agent's voice stands alone in the recording.
    lead_id = await dialer.lead(f"+1212{random.randint(200, 999)}9110", state="NY", zip="10001")
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call = await dialer.ended_call((await response.json())["call_id"], within=60)
    assert call.outcome is not None and call.outcome.value == "answered", call
    assert call.bridged_at is not None and call.recording_id is not None

    log = edge.log_file.read_text()
    assert f"{AGENT} rings at sip:" in log and "transport=ws" in log
    assert f"(call from node 127.0.0.1:{dialer.asterisk.config.sip_port})" in log
    recording = await dialer.services.store.get_recording(call.recording_id)
    assert recording is not None
    sides = recorded_sides(recording.storage_uri, recording.recording_id, dialer.services.settings.recording_keys_dir)
    score = max(best_stretch(side, MICROPHONE_WAV) for side in sides)
    assert score > HEARD, f"the page's microphone was not heard in the call's recording (correlation {score:.2f})"
    await phone.wait_for("call", "ended", "idle")
    await dialer.nothing_left()
