"""Where Asterisk listens and what it announces: SIP transports, NAT, TLS, WSS, SRTP, ACLs. Pure.

Development keeps everything on 127.0.0.1 (plain SIP over UDP, ws:// on the ARI port). A
deployment sets a bind address, the public address when Asterisk is behind NAT (announced in
SIP headers and SDP instead of the private one, except to `local_nets`), TLS on 5061 for desk
phones and TLS trunks, SDES-SRTP for desk phones' media, and wss:// for browser phones on
Asterisk's own HTTPS server (or a reverse proxy in front of ws://, docs/deploy.md).

Each function renders one piece of `asterisk-config/*.conf` from a `NetworkPlan`; the instance
(`dialer.provision.asterisk`) fills the placeholders with them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dialer.provision.sip_endpoints import ice_host_candidates
from dialer.provision.trunks import Transport

# Blocks of the templates kept only in development: the simulated carrier, whose endpoints are
# identified by From user alone (anyone reaching SIP could use them) and bind a port of their own.
DEVELOPMENT_BLOCK = re.compile(r"^; >>> development only.*?^; <<< development only[^\n]*\n", re.S | re.M)


@dataclass(frozen=True)
class NetworkPlan:
    """The network settings of one instance, as Asterisk sees its files (paths inside its root)."""

    development: bool = True
    sip_bind: str = "127.0.0.1"
    sip_port: int = 5060
    sip_tls: bool = False
    sip_tls_port: int = 5061
    sip_srtp: bool = False
    external_address: str = ""
    external_media_address: str = ""
    local_nets: tuple[str, ...] = ()
    stun_server: str = ""
    wss: bool = False
    wss_bind: str = ""
    wss_port: int = 8089
    trunk_transports: frozenset[Transport] = frozenset()
    verify_carriers: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    ca_bundle: str = ""  # PEM file of the CAs trusted for carriers' certificates ("" = none)

    @property
    def media_external(self) -> str:
        return self.external_media_address or self.external_address

    @property
    def local_media_address(self) -> str | None:
        """The one local address RTP is bound to (None: all interfaces)."""
        try:
            address = ipaddress.ip_address(self.sip_bind)
        except ValueError:
            return None
        return None if address.is_unspecified else self.sip_bind


def _nat_lines(plan: NetworkPlan, port: int) -> list[str]:
    """external_* and local_net lines of a UDP/TCP/TLS transport (none without NAT)."""
    if not plan.external_address and not plan.external_media_address:
        return []
    lines = []
    if plan.external_address:
        lines += [f"external_signaling_address = {plan.external_address}", f"external_signaling_port = {port}"]
    lines.append(f"external_media_address = {plan.media_external}")
    lines += [f"local_net = {net}" for net in plan.local_nets]
    return lines


def pjsip_transports(plan: NetworkPlan) -> str:
    """The UDP transport (always: desk phones in development, UDP trunks), and TCP, TLS and WSS
    transports when the settings need them."""
    sections = [["[transport-udp]", "type = transport", "protocol = udp", f"bind = {_bind(plan.sip_bind)}:{plan.sip_port}",
                 *_nat_lines(plan, plan.sip_port)]]
    if Transport.TCP in plan.trunk_transports:
        sections.append(["[transport-tcp]", "type = transport", "protocol = tcp",
                         f"bind = {_bind(plan.sip_bind)}:{plan.sip_port}", *_nat_lines(plan, plan.sip_port)])
    if plan.sip_tls:
        tls = ["[transport-tls]", "type = transport", "protocol = tls",
               f"bind = {_bind(plan.sip_bind)}:{plan.sip_tls_port}",
               f"cert_file = {plan.tls_cert}", f"priv_key_file = {plan.tls_key}",
               # PJSIP's default method is TLS 1.0 alone: TLS 1.2 is what carriers and phones speak.
               "method = tlsv1_2",
               # Outgoing TLS (to carriers) checks the carrier's certificate against these CAs and
               # its name against the host we dial; phones are not asked for certificates.
               f"verify_server = {'yes' if plan.verify_carriers else 'no'}",
               "verify_client = no", "require_client_cert = no"]
        if plan.ca_bundle:
            tls.append(f"ca_list_file = {plan.ca_bundle}")
        sections.append(tls + _nat_lines(plan, plan.sip_tls_port))
    if plan.wss:
        # TLS of wss:// is Asterisk's HTTPS server (http.conf); this transport opens no socket.
        sections.append(["[transport-wss]", "type = transport", "protocol = wss", "bind = 0.0.0.0"])
    return "\n\n".join("\n".join(section) for section in sections)


def _bind(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def desk_phone_options(plan: NetworkPlan) -> str:
    """The desk phones' transport and media encryption (pjsip.conf `[desktop-endpoint]`)."""
    lines = [f"transport = {'transport-tls' if plan.sip_tls and not plan.development else 'transport-udp'}"]
    if plan.sip_srtp:
        lines += ["media_encryption = sdes", "media_encryption_optimistic = no"]
    return "\n".join(lines)


def webrtc_media_options(plan: NetworkPlan) -> str:
    """Where browsers send media: the public address behind NAT, else the bound local address
    (RTP bound to it too), else Asterisk's choice."""
    if plan.media_external:
        return f"media_address = {plan.media_external}"
    local = plan.local_media_address
    if local:
        return f"media_address = {local}\nbind_rtp_to_media_address = yes"
    return ""


def rtp_ice_candidates(plan: NetworkPlan, interface_addresses: Iterable[str]) -> str:
    """rtp.conf `[ice_host_candidates]`: each interface's address announced as the address
    browsers reach (the public one behind NAT; the bound one when RTP listens on one address)."""
    target = plan.media_external or plan.local_media_address
    return ice_host_candidates(interface_addresses, target) if target else ""


def rtp_options(plan: NetworkPlan) -> str:
    """rtp.conf `[general]` additions: a STUN server to learn the public address for ICE."""
    return f"stunaddr = {plan.stun_server}" if plan.stun_server else ""


def http_tls(plan: NetworkPlan) -> str:
    """http.conf lines enabling Asterisk's HTTPS for wss:// (browser phones)."""
    if not plan.wss:
        return ""
    return "\n".join([
        "tlsenable = yes", f"tlsbindaddr = {_bind(plan.wss_bind or plan.sip_bind)}:{plan.wss_port}",
        f"tlscertfile = {plan.tls_cert}", f"tlsprivatekey = {plan.tls_key}",
    ])


def acl_section(permit: Iterable[str]) -> str:
    """A PJSIP `[acl]` letting only `permit` reach SIP at all (empty: no ACL, agents from anywhere)."""
    allowed = [entry for entry in permit if entry]
    if not allowed:
        return ""
    return "\n".join(["[sip-acl]", "type = acl", "deny = 0.0.0.0/0.0.0.0", "deny = ::/0",
                      *(f"permit = {entry}" for entry in ["127.0.0.1", *allowed])])


def strip_development_blocks(text: str, development: bool) -> str:
    """The template without its development-only blocks outside development."""
    return text if development else DEVELOPMENT_BLOCK.sub("", text)
