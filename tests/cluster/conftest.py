"""A cluster for the tests: two Asterisk nodes of the project behind a Kamailio edge, on free ports.

Built with the same pieces as `dialer stack up --nodes 2` (dialer/provision/cluster.py); the
nodes' phones' credentials are generated in a state folder of the run's own. A carrier is a
baresip user agent calling from a port the edge lists as a carrier (`CarrierPhone`); the edge
knows two, so two calls can be sent at once. The edge carries SIP over WebSocket for browser
phones on its SIP port's number, TCP, as `dialer stack up --nodes N` renders it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.ari.client import AriClient, AriConfig
from dialer.ari.events import EventStream
from dialer.ari.models import Event, StasisStart
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.cluster import Cluster
from dialer.provision.kamailio import EdgeConfig, KamailioInstance, SipAddress, kamailio_installed
from dialer.provision.ports import free_local_port
from dialer.serve import dialer_services
from dialer.settings import from_environment
from tests.conftest import RUN_ID
from tests.controller.conftest import GATE_NOW, Dialer, dialer_settings, mark_lists_fresh
from tests.softphone import SOURCE_FILE

NODES = 2


@dataclass
class ClusterUnderTest:
    cluster: Cluster
    carriers: tuple[SipAddress, ...]

    @property
    def edge(self) -> KamailioInstance:
        return self.cluster.edge

    @property
    def nodes(self) -> list[AsteriskInstance]:
        return self.cluster.nodes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    with running_cluster(tmp_path_factory) as under_test:
        yield under_test


@contextlib.contextmanager
def running_cluster(tmp_path_factory: pytest.TempPathFactory, tag: str = "cluster") -> Iterator[ClusterUnderTest]:
    """Two nodes and their edge started (nodes named test-TAG-RUN-nodeN), stopped and removed at the end."""
    if not kamailio_installed():
        pytest.fail("Kamailio is not installed: run scripts/bootstrap.sh")
    state = tmp_path_factory.mktemp("cluster-state")
    edge_port = free_local_port()
    carriers = (SipAddress("127.0.0.1", free_local_port()), SipAddress("127.0.0.1", free_local_port()))
    settings = from_environment(ari_password=f"test-{uuid.uuid4().hex}", state_root=str(state))
    install = ensure_install(settings, say=lambda _: None)
    nodes = []
    for index in range(1, NODES + 1):
        nodes.append(AsteriskInstance.for_settings(
            install, settings, name=f"test-{tag}-{RUN_ID}-node{index}", ari_port=free_local_port(),
            sip_port=free_local_port(), carrier_port=free_local_port(), rtp_start=40000 + 1000 * index,
            rtp_end=40999 + 1000 * index, edge_sip_port=edge_port, edge_ws_port=edge_port,
        ))
    nodes[0].remove_stale_siblings(f"test-{tag}-")
    edge = KamailioInstance(
        EdgeConfig(name=f"test-edge-{tag}-{RUN_ID}", sip_port=edge_port,
                   nodes=tuple(SipAddress("127.0.0.1", node.config.sip_port) for node in nodes), carriers=carriers,
                   ws_port=edge_port),
        tmp_path_factory.mktemp("edge"),
    )
    under_test = ClusterUnderTest(Cluster(nodes, edge), carriers)
    try:
        under_test.cluster.start()
        yield under_test
    finally:
        under_test.cluster.stop()
        for node in nodes:
            node.remove()


@dataclass
class NodeApp:
    """The test's ARI app on one node: calls that entered it, in arrival order."""

    node: AsteriskInstance
    ari: AriClient
    arrived: asyncio.Queue[StasisStart] = field(default_factory=asyncio.Queue)

    def deliver(self, event: Event, generation: int) -> None:
        del generation
        if isinstance(event, StasisStart):
            self.arrived.put_nowait(event)


@pytest.fixture
async def node_apps(cluster: ClusterUnderTest) -> AsyncIterator[list[NodeApp]]:
    """Every node's ARI app ("dialer", the app its from-carrier dialplan enters) connected."""
    apps: list[NodeApp] = []
    streams: list[tuple[EventStream, asyncio.Task[None]]] = []
    clients: list[AriClient] = []
    try:
        for node in cluster.nodes:
            client = AriClient(AriConfig(node.ari_url, node.config.ari_user, node.config.ari_password,
                                         node.config.ari_app))
            await client.__aenter__()
            clients.append(client)
            app = NodeApp(node, client)
            stream = EventStream(client, app)
            streams.append((stream, asyncio.create_task(stream.run(), name=f"events-{node.config.name}")))
            async with asyncio.timeout(10):
                await stream.wait_connected()
            apps.append(app)
        yield apps
    finally:
        for stream, task in streams:
            await stream.stop()
            async with asyncio.timeout(10):
                await task
        for client in clients:
            await client.__aexit__(None, None, None)


class CarrierPhone:
    """A carrier's call into the cluster: a baresip user agent (no registration) on the carrier's
    port, dialing a number at the edge once and hanging up after `seconds`."""

    def __init__(self, workdir: Path, address: SipAddress) -> None:
        self.workdir = workdir
        self.address = address
        self.log = workdir / "baresip.log"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").write_text("\n".join([
            f"sip_listen {address}", "module_path /usr/lib/baresip/modules", "module g711.so", "module aufile.so",
            "module_app account.so", "module_app menu.so", f"audio_source aufile,{SOURCE_FILE}",
            f"audio_player aufile,{workdir / 'heard.wav'}", "",
        ]))
        (workdir / "accounts").write_text(f"<sip:+13125550100@{address.host}>;regint=0;answermode=manual\n")
        self._process: subprocess.Popen[bytes] | None = None

    def dial(self, number: str, edge: SipAddress, seconds: int) -> None:
        if shutil.which("baresip") is None:
            raise RuntimeError("baresip is not installed: run scripts/bootstrap.sh")
        self.stop()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                ["baresip", "-f", str(self.workdir), "-t", str(seconds), "-e", f"/dial sip:{number}@{edge}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None


@pytest.fixture
def carrier_phones(cluster: ClusterUnderTest, tmp_path: Path) -> Iterator[list[CarrierPhone]]:
    """One caller per carrier address the edge knows."""
    phones = [CarrierPhone(tmp_path / f"carrier-{index}", address) for index, address in enumerate(cluster.carriers)]
    yield phones
    for phone in phones:
        phone.stop()


@contextlib.asynccontextmanager
async def dialer_driving(node: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
                         *, agent_ring: float) -> AsyncIterator[Dialer]:
    """`dialer serve`'s services driving one node's ARI, as with a single node, and a CRM client."""
    settings = dialer_settings(node, pg_dsn, redis_url, redis_prefix, tmp_path)
    timeouts = CallTimeouts(agent_ring=agent_ring, lead_ring=15.0)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=timeouts, drain_seconds=5) as services:
        await mark_lists_fresh(services)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Dialer(services, client, node, pg_dsn, crm, uuid.uuid4().hex[:6])
