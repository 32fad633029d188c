"""Several Asterisk nodes behind one Kamailio edge, on one machine (`dialer stack up --nodes N`).

Each node is an ordinary Asterisk instance of the project (its own configuration, ports, ARI,
spool and logs) rendered with the edge's port (InstanceConfig.edge_sip_port): its desk-phone
endpoints ring through the edge and it accepts the calls the edge dispatches to it. The edge is a
Kamailio instance (dialer/provision/kamailio.py) on the SIP port phones already use, so a desk
phone configured for the single-node stack registers at the edge unchanged.

Browser phones register at the edge too, over SIP on a WebSocket on the same port number, TCP
(`ws://HOST:SIP_PORT/ws`): the nodes' browser endpoints ring through the edge, and the consoles
are given that URL (InstanceConfig.edge_ws_port).

Ports on one machine (`cluster_layout`): the edge takes the settings' SIP port; node *i* (from 1)
takes the settings' ARI and carrier ports plus STRIDE*(i-1), a SIP port of the settings' plus
STRIDE*i, and the i-th slice of the RTP range. Node 1 keeps the settings' ARI port, so
`dialer serve` drives node 1 as it drives the single node (docs/cluster.md: what is next).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dialer.provision.asterisk import SIP_REALM, AsteriskInstall, AsteriskInstance, ProvisionError
from dialer.provision.credentials import CredentialsError, CredentialStore, md5_digest
from dialer.provision.kamailio import EdgeConfig, KamailioInstance, SipAddress
from dialer.provision.sip_endpoints import PhoneKind
from dialer.settings import Settings

STRIDE = 100
MAX_NODES = 9
STATE_FILE = "cluster.json"


@dataclass(frozen=True)
class NodeLayout:
    name: str
    ari_port: int
    sip_port: int
    carrier_port: int
    rtp_start: int
    rtp_end: int


@dataclass(frozen=True)
class ClusterLayout:
    edge_sip_port: int
    nodes: tuple[NodeLayout, ...]
    # The edge's SIP-over-WebSocket listener (TCP): the SIP port's number.
    edge_ws_port: int = 0


def cluster_layout(count: int, *, instance: str, ari_port: int, sip_port: int, carrier_port: int,
                   rtp_start: int, rtp_end: int) -> ClusterLayout:
    """Ports and names of `count` nodes and their edge, derived from one node's settings (pure)."""
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"a cluster on one machine has 1 to {MAX_NODES} nodes, not {count}")
    span = (rtp_end - rtp_start + 1) // count
    if span < 100:
        raise ValueError(f"the RTP range {rtp_start}-{rtp_end} is too small for {count} nodes")
    nodes = tuple(
        NodeLayout(
            name=f"{instance}-node{index}",
            ari_port=ari_port + STRIDE * (index - 1),
            sip_port=sip_port + STRIDE * index,
            carrier_port=carrier_port + STRIDE * (index - 1),
            rtp_start=rtp_start + span * (index - 1),
            rtp_end=rtp_start + span * index - 1,
        )
        for index in range(1, count + 1)
    )
    ports = [sip_port] + [port for node in nodes for port in (node.ari_port, node.sip_port, node.carrier_port)]
    if len(set(ports)) != len(ports) or max(ports) > 65535:
        raise ValueError(f"the settings' ports cannot be spread over {count} nodes without a collision: "
                         "choose ports farther apart")
    return ClusterLayout(edge_sip_port=sip_port, nodes=nodes, edge_ws_port=sip_port)


def desk_phone_digests(store: CredentialStore, *, browsers: bool = False) -> dict[str, str]:
    """The HA1 of every desk-phone endpoint, and of every browser endpoint when the edge carries
    WebSocket (`browsers`; without it browsers stay on the nodes)."""
    kinds = {PhoneKind.DESKTOP, PhoneKind.WEBRTC} if browsers else {PhoneKind.DESKTOP}
    return {name: md5_digest(name, store.realm, entry.password) for name, entry in store.entries.items()
            if entry.kind in kinds}


class Cluster:
    """N Asterisk nodes and their Kamailio edge, started and stopped together."""

    def __init__(self, nodes: Sequence[AsteriskInstance], edge: KamailioInstance) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.nodes = list(nodes)
        self.edge = edge

    @classmethod
    def for_settings(cls, install: AsteriskInstall, settings: Settings, count: int,
                     carriers: Sequence[SipAddress] = ()) -> Cluster:
        layout = cluster_layout(count, instance=settings.instance, ari_port=settings.ari_port,
                                sip_port=settings.sip_port, carrier_port=settings.carrier_port,
                                rtp_start=settings.rtp_start, rtp_end=settings.rtp_end)
        nodes = [
            AsteriskInstance.for_settings(install, settings, name=node.name, ari_port=node.ari_port,
                                          sip_port=node.sip_port, carrier_port=node.carrier_port,
                                          rtp_start=node.rtp_start, rtp_end=node.rtp_end,
                                          edge_sip_port=layout.edge_sip_port, edge_ws_port=layout.edge_ws_port,
                                          # Browsers reach the edge, not a node's own wss://;
                                          # a TLS proxy in front of the edge: [wss] public_url.
                                          ws_url=settings.ws_public_url)
            for node in layout.nodes
        ]
        edge = KamailioInstance(
            EdgeConfig(name=f"{settings.instance}-edge", sip_port=layout.edge_sip_port,
                       nodes=tuple(SipAddress(_node_host(settings.sip_bind), node.sip_port) for node in layout.nodes),
                       carriers=tuple(carriers), realm=SIP_REALM, listen=_node_host(settings.sip_bind),
                       ws_port=layout.edge_ws_port),
            settings.cache_dir / "kamailio" / f"{settings.instance}-edge",
        )
        return cls(nodes, edge)

    def start(self) -> None:
        """Every node (rendered with the edge), then the edge with the desk phones' credentials."""
        for node in self.nodes:
            node.start()
        self.edge.start(self.digests())

    def digests(self) -> Mapping[str, str]:
        try:
            return desk_phone_digests(CredentialStore.load(self.nodes[0].credentials_file),
                                      browsers=self.edge.config.ws_port > 0)
        except CredentialsError as error:
            raise ProvisionError(str(error)) from None

    def stop(self, timeout: float = 15.0, *, gracefully: bool = False) -> None:
        self.edge.stop()
        for node in self.nodes:
            node.stop(timeout, gracefully=gracefully)


def _node_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("", "0.0.0.0", "::") else bind


# ---- what `dialer stack up --nodes N` started, for `status` and `down` ------------------------
def save_cluster_state(settings: Settings, count: int, carriers: Sequence[SipAddress]) -> None:
    path = settings.state_dir / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nodes": count, "carriers": [str(carrier) for carrier in carriers]}) + "\n")


def load_cluster_state(settings: Settings) -> tuple[int, tuple[SipAddress, ...]] | None:
    """(nodes, carriers) of the cluster last brought up with these settings, or None."""
    path: Path = settings.state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
        return int(data["nodes"]), tuple(SipAddress.parse(text) for text in data.get("carriers", ()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_cluster_state(settings: Settings) -> None:
    (settings.state_dir / STATE_FILE).unlink(missing_ok=True)
