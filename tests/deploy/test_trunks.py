"""Carrier trunks, caller IDs and DIDs: checks, what Asterisk is given, and the trunk router. Pure."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import replace

import pytest

from dialer.ari.errors import NotFound
from dialer.ari.models import Endpoint
from dialer.provision.sipcheck import digest_authorization, parse_response
from dialer.provision.transports import (
    NetworkPlan,
    acl_section,
    desk_phone_options,
    http_tls,
    pjsip_transports,
    rtp_ice_candidates,
    strip_development_blocks,
    webrtc_media_options,
)
from dialer.provision.trunk_health import TrunkHealth
from dialer.provision.trunks import (
    CallerIdRecord,
    DidRoute,
    Transport,
    Trunk,
    TrunkAuth,
    TrunkRouter,
    caller_id_problem,
    carrier_networks,
    check_plan,
    inbound_dialplan,
    pjsip_trunk_sections,
)

pytestmark = pytest.mark.timeout(30)

TODAY = dt.date(2026, 3, 2)
A = Trunk("carrier-a", "sip.a.example", transport=Transport.TLS, username="agency123", password="pw-a",
          calls_per_second=2.0, srtp=True)
B = Trunk("carrier-b", "203.0.113.9", auth=TrunkAuth.IP, match=("203.0.113.0/28",))


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    """pjsip.conf text as {section: {key: [values]}}; sections of one name merged."""
    parsed: dict[str, dict[str, list[str]]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            parsed.setdefault(current, {})  # an endpoint and its aor share a name
        elif " = " in line:
            key, value = line.split(" = ", 1)
            parsed[current].setdefault(key, []).append(value)
    return parsed


# ---- caller IDs: 16 CFR 310.4(a)(8) ---------------------------------------------------------------
def test_a_vouched_caller_id_names_its_owner_who_vouched_and_when() -> None:
    good = CallerIdRecord("+12125550123", "Example Agency LLC", "Jane Smith", TODAY)
    assert good.problems(TODAY) == []
    assert CallerIdRecord("+12125550123", "", "", None).problems(TODAY) == [
        "Caller ID +12125550123 has no owner: name the agency the number belongs to (owner = ...).",
        "Caller ID +12125550123 has no vouched_by: record who confirmed the agency owns it and answers it during "
        "business hours (16 CFR 310.4(a)(8)).",
        "Caller ID +12125550123 needs vouched_on, the date it was confirmed (not in the future).",
    ]
    assert "not a valid US number in E.164" in CallerIdRecord("212-555-0123", "A", "B", TODAY).problems(TODAY)[0]
    assert "withheld" in CallerIdRecord("anonymous", "A", "B", TODAY).problems(TODAY)[0]
    assert CallerIdRecord("+12125550123", "A", "B", TODAY + dt.timedelta(days=1)).problems(TODAY)


def test_a_campaign_caller_id_must_be_vouched() -> None:
    vouched = [CallerIdRecord("+12125550123", "A", "B", TODAY)]
    assert caller_id_problem("+12125550123", vouched) is None
    assert "not among the agency's vouched numbers" in (caller_id_problem("+13125550100", vouched) or "")
    assert "cannot be withheld" in (caller_id_problem("", vouched) or "")


# ---- trunks -------------------------------------------------------------------------------------
def test_trunk_problems_say_what_to_do() -> None:
    assert A.problems() == [] and B.problems() == []
    assert Trunk("trunk", "x").problems()[0].startswith("The name 'trunk' is kept for the simulated network")
    assert "Set the username" in Trunk("c1", "h").problems()[0]
    assert any("SRTP on trunk 'c1' needs transport = \"tls\"" in p
               for p in Trunk("c1", "h", auth=TrunkAuth.IP, srtp=True).problems())
    assert any("codecs" in p for p in Trunk("c1", "h", auth=TrunkAuth.IP, codecs=("speex",)).problems())


def test_a_plan_refuses_duplicates() -> None:
    problems = check_plan([A, A], [CallerIdRecord("+12125550123", "A", "B", TODAY)] * 2,
                          [DidRoute("+12125550123", "c1"), DidRoute("+12125550123", "c2")], TODAY)
    assert problems[0] == "Two trunks are named 'carrier-a': give each its own name."
    assert "listed twice" in " ".join(problems) and "mapped twice" in " ".join(problems)


def test_a_digest_trunk_registers_authenticates_and_sends_the_caller_id_as_from_and_pai() -> None:
    conf = sections(pjsip_trunk_sections([A]))
    endpoint = conf["carrier-a"]
    assert endpoint["transport"] == ["transport-tls"]
    assert endpoint["outbound_auth"] == ["carrier-a-auth"]
    # From's user is the channel's caller ID number (no from_user), and PAI carries it too.
    assert "from_user" not in endpoint and endpoint["send_pai"] == ["yes"]
    assert endpoint["trust_id_outbound"] == ["yes"]
    # Nobody becomes the trunk by writing its name in From: matched by address only.
    assert endpoint["identify_by"] == ["ip"]
    assert endpoint["media_encryption"] == ["sdes"]
    assert endpoint["context"] == ["from-carrier"]
    assert conf["carrier-a-auth"]["password"] == ["pw-a"]
    registration = conf["carrier-a-registration"]
    assert registration["server_uri"] == ["sip:sip.a.example:5061\\;transport=tls"]
    assert registration["client_uri"] == ["sip:agency123@sip.a.example"]
    assert registration["forbidden_retry_interval"] == ["300"]
    assert conf["carrier-a-identify"]["match"] == ["sip.a.example"]


def test_an_ip_trunk_has_no_credentials_and_matches_the_carrier_networks() -> None:
    conf = sections(pjsip_trunk_sections([B]))
    assert "outbound_auth" not in conf["carrier-b"]
    assert "carrier-b-auth" not in conf and "carrier-b-registration" not in conf
    assert conf["carrier-b"]["aors"] == ["carrier-b"] and conf["carrier-b"]["transport"] == ["transport-udp"]
    assert conf["carrier-b-identify"]["match"] == ["203.0.113.0/28"]


def test_dids_enter_the_app_with_their_campaign_in_every_form_carriers_send() -> None:
    text = inbound_dialplan([DidRoute("+12125550123", "medsupp")], "dialer")
    for form in ("+12125550123", "12125550123", "2125550123"):
        assert f"exten => {form},1,Stasis(dialer,inbound,+12125550123,medsupp)" in text


# ---- the router: preference order, calls per second, failover -----------------------------------
def test_dials_go_to_the_first_trunk_within_its_calls_per_second() -> None:
    c = Trunk("carrier-c", "h", auth=TrunkAuth.IP, calls_per_second=1.0)
    router = TrunkRouter([A, c], now=0.0)
    assert router.capacity(0.0) == 3  # 2 on carrier-a, 1 on carrier-c
    assert [router.route(0.0) for _ in range(4)] == ["carrier-a", "carrier-a", "carrier-c", None]
    assert router.limit(10, 0.0) == 0
    assert router.limit(10, 0.5) == 1  # half a second refills one call on carrier-a
    assert router.route(0.5) == "carrier-a"


def test_an_unlimited_trunk_sets_no_limit_and_no_trunks_falls_back() -> None:
    assert TrunkRouter([B], 0.0).limit(50, 0.0) == 50
    empty = TrunkRouter([], 0.0, fallback_endpoint="trunk")
    assert empty.limit(7, 0.0) == 7 and empty.route(0.0) == "trunk"


def test_a_503_or_a_timeout_sends_the_next_dials_to_the_next_trunk_for_a_while() -> None:
    router = TrunkRouter([B, A], now=0.0, cooldown=60.0)
    assert router.route(0.0) == "carrier-b"
    router.call_ended("carrier-b", cause=17, sip_code=486, now=1.0)  # busy: the person, not the carrier
    assert router.route(1.0) == "carrier-b"
    router.call_ended("carrier-b", cause=34, sip_code=503, now=2.0)
    assert router.status(2.0) == {"carrier-b": "down", "carrier-a": "up"}
    assert router.route(2.0) == "carrier-a"
    assert router.route(62.0) == "carrier-b"  # tried again after the cool-down
    router.set_reachable("carrier-b", False, 63.0)  # Asterisk's OPTIONS pings time out
    assert router.route(63.0) == "carrier-a"
    router.set_reachable("carrier-b", True, 70.0)
    assert router.route(70.0) == "carrier-b"


def test_with_every_trunk_down_dials_still_try_them_in_order() -> None:
    router = TrunkRouter([B, A], now=0.0)
    router.set_reachable("carrier-b", False, 0.0)
    router.set_reachable("carrier-a", False, 0.0)
    assert router.route(0.0) == "carrier-b"


# ---- transports, NAT, TLS, WSS, SRTP --------------------------------------------------------------
def test_an_acl_lets_the_carriers_networks_in() -> None:
    named = Trunk("carrier-n", "sip.n.example", auth=TrunkAuth.IP)  # known by name only: no address to permit
    assert carrier_networks([A, B, named, replace(A, name="carrier-x", match=("198.51.100.7",))]) == [
        "203.0.113.0/28", "198.51.100.7/32"]
    assert acl_section(["10.0.0.0/8"]).splitlines() == [
        "[sip-acl]", "type = acl", "deny = 0.0.0.0/0.0.0.0", "deny = ::/0", "permit = 127.0.0.1", "permit = 10.0.0.0/8"]
    assert acl_section([]) == ""


def test_development_listens_on_loopback_only() -> None:
    plan = NetworkPlan()
    assert pjsip_transports(plan) == "[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:5060"
    assert desk_phone_options(plan) == "transport = transport-udp"
    assert webrtc_media_options(plan) == "media_address = 127.0.0.1\nbind_rtp_to_media_address = yes"
    assert http_tls(plan) == ""
    assert rtp_ice_candidates(plan, ["127.0.0.1", "10.1.2.3"]) == "10.1.2.3 => 127.0.0.1"


def test_a_server_behind_nat_with_tls_wss_and_srtp() -> None:
    plan = NetworkPlan(development=False, sip_bind="0.0.0.0", sip_tls=True, sip_srtp=True,
                       external_address="198.51.100.7", local_nets=("10.0.0.0/8",), wss=True,
                       trunk_transports=frozenset({Transport.TLS, Transport.TCP}),
                       tls_cert="/k/tls.crt", tls_key="/k/tls.key", ca_bundle="/k/ca.pem")
    conf = sections(pjsip_transports(plan))
    assert conf["transport-udp"]["bind"] == ["0.0.0.0:5060"]
    assert conf["transport-tls"]["bind"] == ["0.0.0.0:5061"]
    assert conf["transport-tls"]["verify_server"] == ["yes"] and conf["transport-tls"]["ca_list_file"] == ["/k/ca.pem"]
    assert conf["transport-tls"]["external_signaling_address"] == ["198.51.100.7"]
    assert conf["transport-tls"]["external_media_address"] == ["198.51.100.7"]
    assert conf["transport-tls"]["local_net"] == ["10.0.0.0/8"]
    assert "transport-tcp" in conf and conf["transport-wss"]["protocol"] == ["wss"]
    assert desk_phone_options(plan) == ("transport = transport-tls\nmedia_encryption = sdes\n"
                                        "media_encryption_optimistic = no")
    assert webrtc_media_options(plan) == "media_address = 198.51.100.7"
    assert rtp_ice_candidates(plan, ["10.1.2.3"]) == "10.1.2.3 => 198.51.100.7"
    assert http_tls(plan).splitlines() == ["tlsenable = yes", "tlsbindaddr = 0.0.0.0:8089",
                                           "tlscertfile = /k/tls.crt", "tlsprivatekey = /k/tls.key"]


def test_the_simulated_carrier_is_left_out_of_production() -> None:
    text = "[a]\n; >>> development only: x\n[trunk]\nfoo = 1\n; <<< development only\n[b]\n"
    assert strip_development_blocks(text, development=False) == "[a]\n[b]\n"
    assert strip_development_blocks(text, development=True) == text


# ---- the config check's SIP ---------------------------------------------------------------------
def test_digest_answer_matches_rfc_2617() -> None:
    # RFC 2617 section 3.5's example, with SIP's method and URI in place of HTTP's.
    challenge = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                 'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    answer = digest_authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                                  cnonce="0a4f113b")
    assert answer is not None and 'response="6629fae49393a05397450978507c4ef1"' in answer
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in answer and "qop=auth" in answer
    sha = digest_authorization('Digest realm="r", nonce="n", algorithm=SHA-256', "REGISTER", "sip:h", "u", "p")
    ha1, ha2 = (hashlib.sha256(b"u:r:p").hexdigest(), hashlib.sha256(b"REGISTER:sip:h").hexdigest())
    assert sha is not None and hashlib.sha256(f"{ha1}:n:{ha2}".encode()).hexdigest() in sha
    assert digest_authorization('Digest realm="r", nonce="n", algorithm=MD5-sess-x', "REGISTER", "u", "u", "p") is None


def test_responses_parse_with_compact_and_repeated_headers() -> None:
    response = parse_response(b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP a\r\nWWW-Authenticate: Digest a=1\r\n"
                              b"WWW-Authenticate: Digest b=2\r\nl: 0\r\n\r\n")
    assert response is not None and response.status == 401
    assert response.header("www-authenticate") == ["Digest a=1", "Digest b=2"]
    assert response.header("via") == ["SIP/2.0/UDP a"]
    assert parse_response(b"SIP/2.0 200 OK\r\n") is None


# ---- Asterisk's word on each trunk, into the router -----------------------------------------------
class Endpoints:
    """ARI's endpoint states, as the test sets them."""

    def __init__(self, states: dict[str, str | None]) -> None:
        self.states = states

    async def get_endpoint(self, technology: str, resource: str) -> Endpoint:
        if self.states.get(resource) == "missing":
            raise NotFound("GET", f"/endpoints/{technology}/{resource}", 404, "not found")
        return Endpoint(technology=technology, resource=resource, channel_ids=(), state=self.states.get(resource))


async def test_an_unreachable_trunk_is_skipped_until_it_answers_again() -> None:
    never_pinged = Trunk("carrier-c", "h", auth=TrunkAuth.IP, qualify_seconds=0)
    router = TrunkRouter([B, A, never_pinged], now=0.0)
    endpoints = Endpoints({"carrier-b": "offline", "carrier-a": "online", "carrier-c": "offline"})
    health = TrunkHealth(endpoints, router)
    await health.check()
    assert router.status(time.time()) == {"carrier-b": "down", "carrier-a": "up", "carrier-c": "up"}
    endpoints.states.update({"carrier-b": "online", "carrier-a": "missing"})
    await health.check()
    # carrier-b answers again; carrier-a cannot be read: left as it was.
    assert router.status(time.time()) == {"carrier-b": "up", "carrier-a": "up", "carrier-c": "up"}
    assert health.states == {"carrier-b": "online", "carrier-a": "online"}


def test_a_dial_that_meets_a_503_marks_the_trunk_it_went_through() -> None:
    router = TrunkRouter([B, A], now=0.0)
    assert router.route(0.0, key="+12125551205") == "carrier-b"
    router.dial_ended("+12125551205", cause=34, sip_code=503, now=1.0)
    assert router.route(1.0, key="+13125550100") == "carrier-a"
    router.dial_ended("+13125550100", cause=16, sip_code=None, now=2.0)  # answered, ended normally
    router.dial_ended("+19995550000", cause=34, sip_code=503, now=2.0)  # never routed here: ignored
    assert router.status(2.0) == {"carrier-b": "down", "carrier-a": "up"}
