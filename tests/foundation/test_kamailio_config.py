"""The cluster's SIP edge and nodes as rendered: pure functions, no Kamailio or Asterisk started.

Kamailio's own syntax check (`kamailio -c`) of a rendered script runs too when Kamailio is
installed (it starts nothing).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from dialer.provision.cluster import MAX_NODES, ClusterLayout, cluster_layout, desk_phone_digests
from dialer.provision.credentials import CredentialStore, md5_digest
from dialer.provision.kamailio import (
    NODE_SET,
    EdgeConfig,
    KamailioInstance,
    SipAddress,
    carrier_condition,
    dispatcher_list,
    kamailio_cfg,
    parse_dispatcher_list,
    subscriber_table,
)
from dialer.provision.sip_endpoints import endpoint_plan, pjsip_edge_sections, pjsip_sections

NODE_1 = SipAddress("127.0.0.1", 5160)
NODE_2 = SipAddress("127.0.0.1", 5260)
CARRIER = SipAddress("127.0.0.1", 5999)
HA1 = "0" * 31 + "1"


def edge(**overrides: object) -> EdgeConfig:
    values: dict[str, object] = {"name": "dev-edge", "sip_port": 5060, "nodes": (NODE_1, NODE_2),
                                 "carriers": (CARRIER,)}
    values.update(overrides)
    return EdgeConfig(**values)  # type: ignore[arg-type]


# ---- addresses and the edge's configuration ----------------------------------------------------
def test_addresses_parse_and_print() -> None:
    assert SipAddress.parse("127.0.0.1:5160") == NODE_1
    assert str(NODE_1) == "127.0.0.1:5160"
    assert NODE_1.uri == "sip:127.0.0.1:5160"


@pytest.mark.parametrize("text", ["127.0.0.1", "localhost:5060", "127.0.0.1:0", "127.0.0.1:70000", ":5060",
                                  '127.0.0.1";exit;:5060'])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        SipAddress.parse(text)


def test_an_edge_needs_nodes_and_distinct_addresses() -> None:
    with pytest.raises(ValueError, match="at least one"):
        edge(nodes=())
    with pytest.raises(ValueError, match="own address"):
        edge(nodes=(SipAddress("127.0.0.1", 5060),))
    with pytest.raises(ValueError, match="both a node and a carrier"):
        edge(carriers=(NODE_1,))
    with pytest.raises(ValueError, match="realm"):
        edge(realm='dialer"; exit; "')
    with pytest.raises(ValueError):
        edge(listen="not-an-address")


def test_the_dispatcher_list_names_every_node_in_one_probed_set() -> None:
    lines = dispatcher_list((NODE_1, NODE_2)).splitlines()
    assert lines[1:] == [f"{NODE_SET} sip:127.0.0.1:5160 8 0 node=node1", f"{NODE_SET} sip:127.0.0.1:5260 8 0 node=node2"]


def test_the_subscriber_table_holds_digests_only() -> None:
    table = subscriber_table({"agent1002": HA1, "agent1001": "a" * 32})
    assert table.splitlines() == ["id(int,auto) username(string) ha1(string)", f"1:agent1001:{'a' * 32}",
                                  f"2:agent1002:{HA1}"]


@pytest.mark.parametrize("digests", [{"agent1001": "not-a-digest"}, {"agent:1001": HA1}, {"": HA1},
                                     {"agent1001\n9:x": HA1}])
def test_the_subscriber_table_refuses_what_would_break_it(digests: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        subscriber_table(digests)


def test_carriers_are_recognised_by_address_and_port() -> None:
    assert carrier_condition(()) == "0"
    assert carrier_condition((CARRIER, SipAddress("10.0.0.9", 5060))) == (
        '($si == "127.0.0.1" && $sp == 5999) || ($si == "10.0.0.9" && $sp == 5060)')


def test_the_script_listens_registers_dispatches_and_rings_agents(tmp_path: Path) -> None:
    script = kamailio_cfg(edge(), tmp_path)
    assert "listen=udp:127.0.0.1:5060" in script
    assert f'modparam("auth_db", "db_url", "text://{tmp_path}/db")' in script
    assert f'modparam("dispatcher", "list_file", "{tmp_path}/etc/dispatcher.list")' in script
    assert f'modparam("ctl", "binrpc", "unix:{tmp_path}/run/kamailio_ctl")' in script
    assert 'modparam("usrloc", "db_mode", 0)' in script  # registrations in memory
    assert 'auth_check("dialer", "subscriber", "1")' in script
    assert 'sl_send_reply("403", "Forbidden")' in script  # a wrong password is refused for good
    assert f'ds_is_from_list("{NODE_SET}")' in script and 'lookup("location")' in script
    assert 'modparam("dispatcher", "flags", 2)' in script  # failover keeps the other nodes
    assert 'ds_select_dst("1", "4")' in script and "ds_next_dst()" in script and 'ds_mark_dst("ip")' in script
    assert '($si == "127.0.0.1" && $sp == 5999)' in script
    assert script.count("{") == script.count("}")


def test_without_a_websocket_port_the_script_has_no_tcp_listener(tmp_path: Path) -> None:
    script = kamailio_cfg(edge(), tmp_path)
    assert "disable_tcp=yes" in script and "listen=tcp:" not in script
    assert 'loadmodule "websocket.so"' not in script and "xhttp" not in script and edge().ws_url == ""


def test_browsers_register_over_websocket_and_are_reached_through_their_connection(tmp_path: Path) -> None:
    config = edge(ws_port=5060)
    assert config.ws_url == "ws://127.0.0.1:5060/ws"
    script = kamailio_cfg(config, tmp_path)
    assert "listen=udp:127.0.0.1:5060" in script and "listen=tcp:127.0.0.1:5060" in script
    assert "disable_tcp" not in script and "tcp_accept_no_cl=yes" in script
    for module in ("xhttp", "websocket", "nathelper"):
        assert f'loadmodule "{module}.so"' in script
    assert "event_route[xhttp:request]" in script and "ws_handle_handshake()" in script
    assert '$hu =~ "^/ws"' in script  # no other HTTP
    # A browser's registration keeps its connection; its Contact in dialogs gets an alias.
    assert 'nat_uac_test("64")' in script and "fix_nated_register();" in script
    assert "add_contact_alias();" in script and "handle_ruri_alias();" in script
    assert 'modparam("registrar", "received_avp", "$avp(RECEIVED)")' in script
    assert 't_on_reply("FROM_BROWSER");' in script and "onreply_route[FROM_BROWSER]" in script
    assert script.count("{") == script.count("}")
    with pytest.raises(ValueError):
        edge(ws_port=70000)


def test_without_carriers_no_call_enters_unauthenticated(tmp_path: Path) -> None:
    script = kamailio_cfg(edge(carriers=()), tmp_path)
    assert 'if (is_method("INVITE") && (0)) {' in script


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="Kamailio is not installed (scripts/bootstrap.sh)")
def test_kamailio_accepts_the_rendered_script(tmp_path: Path) -> None:
    instance = KamailioInstance(edge(), tmp_path / "edge")
    instance.render({"agent1001": HA1})
    instance.check()
    assert (tmp_path / "edge" / "db" / "subscriber").stat().st_mode & 0o777 == 0o600
    with_browsers = KamailioInstance(edge(ws_port=5060), tmp_path / "edge-ws")
    with_browsers.render({"agent1001-web": HA1})
    with_browsers.check()


def test_dispatcher_states_are_read_from_kamcmd_output() -> None:
    output = """{
	NRSETS: 1
	RECORDS: {
		SET: {
			ID: 1
			TARGETS: {
				DEST: {
					URI: sip:127.0.0.1:5260
					FLAGS: IP
					PRIORITY: 0
				}
				DEST: {
					URI: sip:127.0.0.1:5160
					FLAGS: AP
					PRIORITY: 0
				}
			}
		}
	}
}
"""
    assert parse_dispatcher_list(output) == {"sip:127.0.0.1:5260": "IP", "sip:127.0.0.1:5160": "AP"}


# ---- the nodes' side -------------------------------------------------------------------------------
def test_a_node_rings_desk_phones_through_the_edge_and_keeps_browsers() -> None:
    plan = endpoint_plan(1, 0)
    digests = {endpoint.name: HA1 for endpoint in plan}
    alone = pjsip_sections(plan, digests, "dialer")
    assert "contact =" not in alone
    clustered = pjsip_sections(plan, digests, "dialer", edge="127.0.0.1:5060")
    assert "[agent1001](phone-aor)\ncontact = sip:agent1001@127.0.0.1:5060\n" in clustered
    assert "[agent1001-web](phone-aor)\n" in clustered
    assert "contact = sip:agent1001-web" not in clustered
    # An edge carrying WebSocket rings browsers too, over UDP to the edge.
    browsers = pjsip_sections(plan, digests, "dialer", edge="127.0.0.1:5060", browsers_at_edge=True)
    assert "[agent1001-web](phone-aor)\ncontact = sip:agent1001-web@127.0.0.1:5060\n" in browsers
    assert "[agent1001-web](webrtc-endpoint)\nauth = agent1001-web\naors = agent1001-web\ntransport = transport-udp\n" \
        in browsers
    assert browsers.count("transport =") == 1  # desk phones keep their template's transport
    assert pjsip_sections(plan, digests, "dialer", browsers_at_edge=True) == alone  # no edge: nothing changes


def test_a_node_takes_the_edges_calls_by_source_address_only() -> None:
    sections = pjsip_edge_sections("127.0.0.1:5060")
    assert "identify_by = ip" in sections and "context = from-carrier" in sections
    assert "match = 127.0.0.1:5060" in sections and "contact = sip:127.0.0.1:5060" in sections
    with pytest.raises(ValueError):
        pjsip_edge_sections("127.0.0.1")


# ---- the layout of a cluster on one machine ---------------------------------------------------------
def layout(count: int, **overrides: int) -> ClusterLayout:
    values = {"ari_port": 8088, "sip_port": 5060, "carrier_port": 5070, "rtp_start": 10000, "rtp_end": 20000}
    values.update(overrides)
    return cluster_layout(count, instance="dev", **values)


def test_the_layout_keeps_phones_port_at_the_edge_and_node_one_on_the_settings_ari() -> None:
    two = cluster_layout(2, instance="dev", ari_port=8088, sip_port=5060, carrier_port=5070,
                         rtp_start=10000, rtp_end=20000)
    assert two.edge_sip_port == 5060 and two.edge_ws_port == 5060  # WebSocket: the same number, TCP
    assert [(node.name, node.ari_port, node.sip_port, node.carrier_port) for node in two.nodes] == [
        ("dev-node1", 8088, 5160, 5070), ("dev-node2", 8188, 5260, 5170)]
    assert [(node.rtp_start, node.rtp_end) for node in two.nodes] == [(10000, 14999), (15000, 19999)]


@pytest.mark.parametrize("count", range(1, MAX_NODES + 1))
def test_no_two_ports_collide(count: int) -> None:
    plan = cluster_layout(count, instance="dev", ari_port=8088, sip_port=5060, carrier_port=5070,
                          rtp_start=10000, rtp_end=20000)
    ports = [plan.edge_sip_port] + [p for node in plan.nodes for p in (node.ari_port, node.sip_port, node.carrier_port)]
    assert len(set(ports)) == len(ports)
    ranges = sorted((node.rtp_start, node.rtp_end) for node in plan.nodes)
    assert all(first[1] < second[0] for first, second in itertools.pairwise(ranges))


@pytest.mark.parametrize(("count", "overrides"), [(0, {}), (MAX_NODES + 1, {}), (3, {"rtp_end": 10200}),
                                                  (2, {"carrier_port": 5160}), (2, {"sip_port": 65500})])
def test_impossible_layouts_are_refused(count: int, overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        layout(count, **overrides)


def test_the_edge_gets_desk_phones_digests_only(tmp_path: Path) -> None:
    store = CredentialStore.provision(tmp_path / "sip.json", endpoint_plan(2, 1), realm="dialer",
                                      sip_domain="127.0.0.1", udp_port=5060, ws_url="ws://127.0.0.1:8088/ws")
    digests = desk_phone_digests(store)
    assert sorted(digests) == ["agent1001", "agent1002", "supervisor01"]
    password = store.entries["agent1001"].password
    assert digests["agent1001"] == md5_digest("agent1001", "dialer", password)
    with_browsers = desk_phone_digests(store, browsers=True)
    assert sorted(with_browsers) == ["agent1001", "agent1001-web", "agent1002", "agent1002-web", "supervisor01",
                                     "supervisor01-web"]


def test_rendering_says_which_files_changed(tmp_path: Path) -> None:
    instance = KamailioInstance(edge(), tmp_path / "edge")
    assert instance.render({"agent1001": HA1}) == {"kamailio.cfg", "dispatcher.list", "subscriber"}
    assert instance.render({"agent1001": HA1}) == set()
    # A new credential needs a restart of a running edge (start() does it); nodes only a reload.
    assert instance.render({"agent1001": "a" * 32}) == {"subscriber"}
    moved = KamailioInstance(edge(nodes=(NODE_1,)), tmp_path / "edge")
    assert moved.render({"agent1001": "a" * 32}) == {"dispatcher.list"}
