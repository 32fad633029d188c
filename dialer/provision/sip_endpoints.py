"""The SIP endpoints an instance has, and their PJSIP sections: pure, no IO.

Every person who takes calls has two endpoints, one per kind of phone:

* ``agent1001`` (``supervisor01``): a desktop SIP phone over UDP with plain RTP (baresip in the
  tests, a desk phone or softphone on a floor);
* ``agent1001-web`` (``supervisor01-web``): the browser phone of the consoles, over SIP on a
  WebSocket with ``webrtc=yes`` (DTLS-SRTP, ICE, rtcp-mux, AVPF).

Why two endpoints and not one reachable both ways: PJSIP decides the media of a call per
*endpoint*, not per registered contact. A ``webrtc=yes`` endpoint offers ``UDP/TLS/RTP/SAVPF``
with a DTLS fingerprint and ICE, which a plain-RTP desk phone refuses (488); a plain endpoint
offers ``RTP/AVP``, which a browser refuses (it requires DTLS-SRTP). One endpoint with both
phones registered would fail whichever phone does not match. So the agent's record names the
endpoint to ring (its ``sip_endpoint``): the browser one when the agent works from the console,
the desktop one otherwise; the dialer rings either the same way (``PJSIP/<endpoint>``).

Every endpoint has its own credential (username = endpoint name, a generated password given to
Asterisk only as an MD5 digest, see :mod:`dialer.provision.credentials`), so no endpoint can
register as another, and an agent cannot register as a supervisor.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WEB_SUFFIX = "-web"
# Endpoint names become SIP user parts, PJSIP section names and ARI resource names.
ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9]*[0-9](-web)?$")


class Role(enum.StrEnum):
    """Who uses an endpoint: the dialer calls agents for calls and supervisors for monitoring."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"


class PhoneKind(enum.StrEnum):
    """How the phone reaches Asterisk."""

    DESKTOP = "desktop"  # SIP over UDP, plain RTP (G.711)
    WEBRTC = "webrtc"  # SIP over WebSocket, DTLS-SRTP + ICE (Opus or G.711)


@dataclass(frozen=True)
class SipEndpoint:
    """One PJSIP endpoint (with its auth and AOR of the same name)."""

    name: str
    role: Role
    kind: PhoneKind
    caller_name: str
    caller_number: str

    @property
    def dial_string(self) -> str:
        """What ARI originates to ring this phone."""
        return f"PJSIP/{self.name}"


def agent_endpoint(number: int) -> str:
    """The desktop endpoint of agent `number` (1-based): agent1001, agent1002, ..."""
    return f"agent{1000 + number}"


def supervisor_endpoint(number: int) -> str:
    """The desktop endpoint of supervisor `number` (1-based): supervisor01, supervisor02, ..."""
    return f"supervisor{number:02d}"


def web_endpoint(endpoint: str) -> str:
    """The browser (WebRTC) endpoint paired with a desktop endpoint: agent1001 -> agent1001-web."""
    return endpoint if endpoint.endswith(WEB_SUFFIX) else endpoint + WEB_SUFFIX


def desktop_endpoint(endpoint: str) -> str:
    """The desktop endpoint paired with a browser one: agent1001-web -> agent1001."""
    return endpoint.removesuffix(WEB_SUFFIX)


def endpoint_plan(agents: int, supervisors: int) -> list[SipEndpoint]:
    """Every person's endpoints, desktop and browser, agents first."""
    if agents < 0 or supervisors < 0:
        raise ValueError("the numbers of agents and supervisors cannot be negative")
    if agents > 8999:
        raise ValueError("at most 8999 agents (agent1001 ... agent9999)")
    if supervisors > 99:
        raise ValueError("at most 99 supervisors (supervisor01 ... supervisor99)")
    plan: list[SipEndpoint] = []
    people = [(Role.AGENT, agent_endpoint(n), f"Agent {1000 + n}", str(1000 + n)) for n in range(1, agents + 1)]
    people += [(Role.SUPERVISOR, supervisor_endpoint(n), f"Supervisor {n:02d}", str(9000 + n))
               for n in range(1, supervisors + 1)]
    for role, name, caller_name, caller_number in people:
        plan.append(SipEndpoint(name, role, PhoneKind.DESKTOP, caller_name, caller_number))
        plan.append(SipEndpoint(web_endpoint(name), role, PhoneKind.WEBRTC, caller_name, caller_number))
    return plan


TEMPLATES = {PhoneKind.DESKTOP: "desktop-endpoint", PhoneKind.WEBRTC: "webrtc-endpoint"}


def pjsip_sections(plan: Iterable[SipEndpoint], digests: Mapping[str, str], realm: str, *,
                   edge: str = "", browsers_at_edge: bool = False) -> str:
    """The endpoint, auth and aor sections of `plan` for pjsip.conf.

    `edge` ("HOST:PORT") is the SIP edge of a cluster (dialer/provision/kamailio.py): desk
    phones register there, not at this node, so their AORs get the edge as static contact
    (``sip:agent1001@EDGE``) and ``PJSIP/agent1001`` rings the phone through the edge from any
    node. Browser endpoints stay on the node unless `browsers_at_edge` (the edge carries SIP
    over WebSocket): then they too have the edge as static contact, reached over UDP (the edge
    relays to the browser's WebSocket); DTLS-SRTP and ICE stay between the browser and the node.

    `digests` maps each endpoint name to the MD5 of ``username:realm:password`` (Asterisk
    never sees the password itself). The templates (``desktop-endpoint``, ``webrtc-endpoint``,
    ``phone-auth``, ``phone-aor``) are defined in asterisk-config/pjsip.conf.
    """
    sections = []
    for endpoint in plan:
        digest = digests[endpoint.name]
        if not re.fullmatch(r"[0-9a-f]{32}", digest):
            raise ValueError(f"the digest of {endpoint.name} is not an MD5 hex digest")
        at_edge = bool(edge) and (endpoint.kind is PhoneKind.DESKTOP or browsers_at_edge)
        # A browser endpoint's template names the node's own WebSocket transport; rung through
        # the edge, it is reached over UDP.
        transport = "transport = transport-udp\n" if at_edge and endpoint.kind is PhoneKind.WEBRTC else ""
        sections.append(
            f"[{endpoint.name}]({TEMPLATES[endpoint.kind]})\n"
            f"auth = {endpoint.name}\naors = {endpoint.name}\n{transport}"
            f"callerid = {endpoint.caller_name} <{endpoint.caller_number}>\n\n"
            f"[{endpoint.name}](phone-auth)\nusername = {endpoint.name}\nrealm = {realm}\n"
            f"password_digest = MD5:{digest}\n\n"
            f"[{endpoint.name}](phone-aor)\n"
            + (f"contact = sip:{endpoint.name}@{edge}\n" if at_edge else "")
        )
    return "\n".join(sections)


def ice_host_candidates(interface_addresses: Iterable[str], media_address: str) -> str:
    """rtp.conf ``[ice_host_candidates]`` lines announcing `media_address` instead of each of
    this host's IPv4 interface addresses (Asterisk's ICE host candidates; it skips loopback)."""
    lines = [f"{address} => {media_address}" for address in sorted(set(interface_addresses))
             if address != media_address and not address.startswith("127.")]
    return "\n".join(lines)


def pjsip_edge_sections(edge: str) -> str:
    """The node's side of the cluster's SIP edge at `edge` ("HOST:PORT"): an endpoint for the
    calls the edge dispatches here (carriers' calls: context from-carrier), recognised by the
    edge's source address and port only, its contact, pinged every 5 s."""
    host, _, port = edge.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"the edge {edge!r} is not HOST:PORT")
    return "\n".join([
        "[edge]", "type = endpoint", "transport = transport-udp", "context = from-carrier", "identify_by = ip",
        "disallow = all", "allow = ulaw,alaw", "aors = edge", "direct_media = no", "rtp_symmetric = yes",
        "send_pai = yes", "trust_id_inbound = yes", "trust_id_outbound = yes", "",
        "[edge]", "type = aor", f"contact = sip:{host}:{port}", "qualify_frequency = 5", "",
        "[edge-identify]", "type = identify", "endpoint = edge", f"match = {host}:{port}", "",
    ])
