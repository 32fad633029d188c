"""The cluster's SIP edge on the real stack (not a test): two Asterisk nodes behind Kamailio.

Measures, in one run on this machine:

* registration of P desk phones (baresip) at the edge;
* calls from both nodes to those phones through the edge, C at once: ARI originate -> the
  phone's leg answered (channel Up), p50/p99, and the edge's CPU time per call;
* a node stopped: how long until the edge's OPTIONS probes mark it down, and how long two
  carriers' calls sent right after the stop take to land on the other node (round robin sends
  one to the stopped node; the edge's failure route moves it after the 2 s INVITE timeout).

It starts its own nodes and edge on free ports in a temporary folder, and removes them.

    .venv/bin/python scripts/bench_edge.py [--phones 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.ari.client import AriClient, AriConfig
from dialer.ari.events import EventStream
from dialer.ari.models import Event, StasisStart
from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.cluster import Cluster
from dialer.provision.kamailio import EdgeConfig, KamailioInstance, SipAddress
from dialer.provision.ports import free_local_port
from dialer.provision.sip_endpoints import agent_endpoint
from dialer.settings import from_environment
from tests.cluster.conftest import CarrierPhone
from tests.softphone import Softphone
from tests.waiting import until


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that are alive (Kamailio's workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / 100.0
    return total


class Arrivals:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[StasisStart] = asyncio.Queue()

    def deliver(self, event: Event, generation: int) -> None:
        del generation
        if isinstance(event, StasisStart):
            self.queue.put_nowait(event)


async def _wait_up(ari: AriClient, channel_id: str, within: float = 20.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        try:
            if (await ari.get_channel(channel_id)).state == "Up":
                return time.perf_counter() - started
        except Exception:  # not created yet
            pass
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{channel_id} not answered within {within} s")


async def calls_round(nodes: list[AsteriskInstance], phones: int) -> list[float]:
    async def one(index: int) -> float:
        node = nodes[index % len(nodes)]
        config = AriConfig(node.ari_url, node.config.ari_user, node.config.ari_password, "bench-edge")
        async with AriClient(config) as ari:
            channel_id = f"edge-{uuid.uuid4().hex[:10]}"
            started = time.perf_counter()
            await ari.originate(channel_id, f"PJSIP/{agent_endpoint(index + 1)}", context="softphone-check",
                                extension="s", priority=1, variables={"CHECK_SECONDS": "3"})
            await _wait_up(ari, channel_id)
            return time.perf_counter() - started

    return list(await asyncio.gather(*(one(index) for index in range(phones))))


async def failover(cluster: Cluster, carriers: tuple[SipAddress, ...], work: Path) -> tuple[list[float], float]:
    node_one, node_two = cluster.nodes[0], cluster.nodes[1]
    config = AriConfig(node_two.ari_url, node_two.config.ari_user, node_two.config.ari_password,
                       node_two.config.ari_app)
    async with AriClient(config) as ari:
        arrivals = Arrivals()
        stream = EventStream(ari, arrivals)
        task = asyncio.create_task(stream.run())
        await stream.wait_connected()
        try:
            await asyncio.to_thread(node_one.stop)
            stopped = time.perf_counter()
            # Two calls at once: round robin sends one of them to the stopped node.
            callers = [CarrierPhone(work / f"carrier-{index}", carrier) for index, carrier in enumerate(carriers)]
            for caller in callers:
                caller.dial("+13125550142", cluster.edge.config.edge, seconds=15)
            landed = []
            for _ in callers:
                event = await asyncio.wait_for(arrivals.queue.get(), 15)
                landed.append(time.perf_counter() - stopped)
                await ari.hangup(event.channel.id)
            for caller in callers:
                caller.stop()
            uri = f"sip:127.0.0.1:{node_one.config.sip_port}"
            await until(lambda: cluster.edge.node_states()[uri].startswith("I"), within=15, interval=0.05)
            marked = time.perf_counter() - stopped
        finally:
            await stream.stop()
            await task
    return landed, marked


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    settings = from_environment(ari_password=f"bench-{uuid.uuid4().hex}", state_root=str(work / "state"),
                                agents=max(20, args.phones))
    install = ensure_install(settings)
    edge_port = free_local_port()
    carriers = (SipAddress("127.0.0.1", free_local_port()), SipAddress("127.0.0.1", free_local_port()))
    run = uuid.uuid4().hex[:6]
    nodes = [AsteriskInstance.for_settings(install, settings, name=f"bench-edge-{run}-node{index}",
                                           ari_port=free_local_port(), sip_port=free_local_port(),
                                           carrier_port=free_local_port(), rtp_start=42000 + 2000 * index,
                                           rtp_end=43999 + 2000 * index, edge_sip_port=edge_port)
             for index in (1, 2)]
    edge = KamailioInstance(EdgeConfig(f"bench-edge-{run}", edge_port,
                                       tuple(SipAddress("127.0.0.1", node.config.sip_port) for node in nodes),
                                       carriers), work / "edge")
    cluster = Cluster(nodes, edge)
    phones: list[Softphone] = []
    try:
        cluster.start()
        started = time.perf_counter()
        for index in range(1, args.phones + 1):
            endpoint = agent_endpoint(index)
            phone = Softphone(work / endpoint, endpoint, nodes[0].sip_credentials(endpoint).password, edge_port)
            phone.start()
            phones.append(phone)
        print(f"{args.phones} phones registered at the edge in {time.perf_counter() - started:.1f} s "
              "(one after another, baresip start included)")
        edge_pid = edge.pid()
        assert edge_pid is not None
        setups: list[float] = []
        cpu_before = cpu_seconds(edge_pid)
        for _ in range(args.rounds):
            setups += await calls_round(nodes, args.phones)
            await asyncio.sleep(5)  # the calls end (CHECK_SECONDS) before the next round
        cpu = cpu_seconds(edge_pid) - cpu_before
        print(f"calls node -> edge -> phone, {args.phones} at once x {args.rounds} rounds: "
              f"originate -> answered p50 {statistics.median(setups) * 1000:.0f} ms, "
              f"p99 {percentile(setups, 0.99) * 1000:.0f} ms; edge CPU {cpu * 1000 / len(setups):.1f} ms per call "
              f"(INVITE, 200, ACK, BYE through it)")
        landed, marked = await failover(cluster, carriers, work)
        print(f"node 1 stopped: two carriers' calls sent at once both landed on node 2, after "
              f"{' and '.join(f'{seconds:.2f}' for seconds in landed)} s; the edge marked node 1 down after {marked:.2f} s")
    finally:
        for phone in phones:
            phone.stop()
        cluster.stop()
        for node in nodes:
            node.remove()


if __name__ == "__main__":
    asyncio.run(main())
