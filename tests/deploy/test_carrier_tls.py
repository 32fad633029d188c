"""A real carrier trunk: the dialer's Asterisk and a second Asterisk playing the carrier, over TLS
with digest authentication and SRTP, certificates made by the test.

- The dialer's Asterisk registers to the carrier (digest) over TLS, checking the carrier's
  certificate against the test's CA.
- A click-to-call through the whole dialer reaches the carrier with the campaign's caller ID in
  From and in P-Asserted-Identity, over TLS signalling and SRTP media.
- The carrier calls a DID mapped to a campaign: the call enters that campaign and reaches its
  logged-in agent.
- A wrong password, and a certificate from another CA, each give one clear sentence from
  `dialer config check` and in the dialer's log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.ari.client import AriClient, AriConfig
from dialer.ari.events import EventStream
from dialer.ari.models import Event, StasisStart
from dialer.campaign.agent import AgentState
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.ports import free_local_port
from dialer.provision.sipcheck import log_trunk_checks, probe_trunk
from dialer.provision.tls import issue_certificate, make_authority
from dialer.provision.trunks import DidRoute, Transport, Trunk
from dialer.serve import dialer_services
from dialer.settings import from_environment
from tests.conftest import AUDIT_KEYS_DIR, RUN_ID
from tests.controller.conftest import GATE_NOW, Dialer, mark_lists_fresh
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PASSWORD = f"carrier-{uuid.uuid4().hex[:12]}"
USERNAME = "agency123"
CALLER_ID = "+12125550123"  # the campaign's, vouched
DID = "+13125550142"  # rings the inbound campaign
SUFFIX = uuid.uuid4().hex[:6]
OUTBOUND_CAMPAIGN = f"camp-out-{SUFFIX}"
INBOUND_CAMPAIGN = f"camp-in-{SUFFIX}"

CARRIER_PJSIP = f"""\
; A carrier for the test: our agency's account {USERNAME} (digest), TLS only, SRTP.
[global]
type = global
endpoint_identifier_order = username,auth_username,anonymous
user_agent = test-carrier

@@TRANSPORTS@@

[{USERNAME}]
type = endpoint
transport = transport-tls
context = carrier-in
identify_by = username,auth_username
disallow = all
allow = ulaw,alaw
auth = {USERNAME}
aors = {USERNAME}
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
media_encryption = sdes
send_pai = yes
trust_id_inbound = yes
trust_id_outbound = yes

[{USERNAME}]
type = auth
auth_type = userpass
username = {USERNAME}
password = {PASSWORD}

[{USERNAME}]
type = aor
max_contacts = 1
remove_existing = yes
"""

CARRIER_EXTENSIONS = """\
[general]
static = yes
writeprotect = yes

; What arrives from the agency: its headers kept for the test, then the test's app answers.
[carrier-in]
exten => _[+0-9].,1,Set(FROM_HEADER=${PJSIP_HEADER(read,From)})
 same => n,Set(PAI_HEADER=${PJSIP_HEADER(read,P-Asserted-Identity)})
 same => n,Set(SECURE_SIGNALING=${CHANNEL(pjsip,secure)})
 same => n,Stasis(@@ARI_APP@@,outbound,${EXTEN})
 same => n,Hangup()
"""


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    carrier_cert: Path
    carrier_key: Path
    dialer_cert: Path
    dialer_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    authority, other = make_authority("Test carrier CA", now), make_authority("Some other CA", now)
    authority.write(folder / "ca.pem")
    other.write(folder / "other-ca.pem")
    issue_certificate(folder / "carrier.crt", folder / "carrier.key", ["127.0.0.1", "localhost"], now, authority)
    issue_certificate(folder / "dialer.crt", folder / "dialer.key", ["127.0.0.1", "localhost"], now, authority)
    return Pki(folder / "ca.pem", folder / "other-ca.pem", folder / "carrier.crt", folder / "carrier.key",
               folder / "dialer.crt", folder / "dialer.key")


@pytest.fixture(scope="module")
def carrier(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """The carrier: a second Asterisk with a TLS transport and our agency's account."""
    settings = from_environment(
        {}, instance=f"test-carrier-{RUN_ID}", ari_port=free_local_port(), sip_port=free_local_port(),
        carrier_port=free_local_port(), ari_password=f"test-{uuid.uuid4().hex}", ari_app="carrier",
        state_root=str(tmp_path_factory.mktemp("carrier-state")), rtp_start=41000, rtp_end=42000, agents=1,
        supervisors=1, sip_tls=True, sip_tls_port=free_local_port(), tls_cert_file=str(pki.carrier_cert),
        tls_key_file=str(pki.carrier_key), tls_ca_file=str(pki.ca),
    )
    instance = AsteriskInstance.for_settings(
        ensure_install(settings, say=lambda _: None), settings,
        templates={"pjsip.conf": CARRIER_PJSIP, "extensions.conf": CARRIER_EXTENSIONS})
    with instance.running(remove=True):
        yield instance


def carrier_trunk(carrier: AsteriskInstance, pki: Pki, **changes: object) -> Trunk:
    trunk = Trunk("carrier-a", "127.0.0.1", port=carrier.config.sip_tls_port, transport=Transport.TLS,
                  username=USERNAME, password=PASSWORD, ca_file=str(pki.ca), srtp=True, match=("127.0.0.1",))
    return replace(trunk, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def agency(carrier: AsteriskInstance, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """The dialer's Asterisk, with the TLS trunk to the carrier and a DID mapped to a campaign."""
    settings = from_environment(
        {}, instance=f"test-agency-{RUN_ID}", ari_port=free_local_port(), sip_port=free_local_port(),
        carrier_port=free_local_port(), ari_password=f"test-{uuid.uuid4().hex}",
        state_root=str(tmp_path_factory.mktemp("agency-state")), rtp_start=42001, rtp_end=43000, agents=2,
        supervisors=1, sip_tls=True, sip_tls_port=free_local_port(), tls_cert_file=str(pki.dialer_cert),
        tls_key_file=str(pki.dialer_key), trunks=(carrier_trunk(carrier, pki),),
        dids=(DidRoute(DID, INBOUND_CAMPAIGN),),
    )
    instance = AsteriskInstance.for_settings(ensure_install(settings, say=lambda _: None), settings)
    with instance.running(remove=True):
        yield instance


class CarrierApp:
    """The test's ARI app on the carrier: calls that arrive from the agency, in a queue."""

    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        self.arrived: asyncio.Queue[StasisStart] = asyncio.Queue()
        self.events: list[Event] = []

    def deliver(self, event: Event, generation: int) -> None:
        self.events.append(event)
        if isinstance(event, StasisStart) and event.args[:1] == ("outbound",):
            self.arrived.put_nowait(event)


@pytest.fixture
async def carrier_app(carrier: AsteriskInstance) -> AsyncIterator[CarrierApp]:
    config = AriConfig(carrier.ari_url, carrier.config.ari_user, carrier.config.ari_password, carrier.config.ari_app)
    async with AriClient(config) as ari:
        app = CarrierApp(ari)
        stream = EventStream(ari, app)
        task = asyncio.create_task(stream.run(), name="carrier-ari-events")
        try:
            async with asyncio.timeout(10):
                await stream.wait_connected()
            yield app
        finally:
            await stream.stop()
            async with asyncio.timeout(10):
                await task


@pytest.fixture
async def dialer(agency: AsteriskInstance, carrier: AsteriskInstance, pki: Pki, pg_dsn: str, redis_url: str,
                 redis_prefix: str, tmp_path: Path) -> AsyncIterator[Dialer]:
    settings = from_environment(
        {}, pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix, ari_port=agency.config.ari_port,
        ari_user=agency.config.ari_user, ari_password=agency.config.ari_password, cache_dir=tmp_path / "cache",
        state_root=str(tmp_path / "state"), recordings_root=str(tmp_path / "recordings"), instance="tls-test",
        trunks=agency.config.trunks, dids=agency.config.dids, audit_keys_root=str(AUDIT_KEYS_DIR),
    )
    assert settings.trunk_endpoint == "carrier-a"
    timeouts = CallTimeouts(agent_ring=8.0, lead_ring=15.0)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=timeouts, drain_seconds=5,
                               campaign_overrides={"wrap_up_seconds": 1.0}) as services:
        await mark_lists_fresh(services)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Dialer(services, client, agency, pg_dsn, crm, SUFFIX)


async def _registered(agency: AsteriskInstance, within: float = 30.0) -> str:
    """Wait for the agency's registration to the carrier and for the trunk's contact to answer
    its OPTIONS ping (Asterisk does not dial a contact it has not reached); Asterisk's own word."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        output = await asyncio.to_thread(agency.cli, "pjsip show registrations")
        contacts = await asyncio.to_thread(agency.cli, "pjsip show contacts")
        up = re.search(r"\sRegistered\s", output) and re.search(r"carrier-a/\S+\s+\w+\s+Avail", contacts)
        if up or asyncio.get_running_loop().time() > deadline:
            return output + contacts
        await asyncio.sleep(0.5)


async def test_the_agency_registers_over_tls_with_its_password(agency: AsteriskInstance) -> None:
    output = await _registered(agency)
    assert re.search(r"carrier-a-registration/sip:127\.0\.0\.1:\d+;transport=t.*\sRegistered\s", output), output
    # The same check `dialer config check` runs, from outside Asterisk.
    result = await asyncio.to_thread(probe_trunk, agency.config.trunks[0])
    assert result.ok and result.status == 200, result.message


async def test_an_outbound_call_carries_the_campaign_caller_id_in_from_and_pai(
        dialer: Dialer, carrier_app: CarrierApp, agency: AsteriskInstance) -> None:
    await _registered(agency)
    agent_id = f"agent-{SUFFIX}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": "Local/2101@agent-sim"})
    await dialer.seed("campaign_upsert", {"campaign_id": OUTBOUND_CAMPAIGN, "name": "Final expense",
                                          "caller_id": CALLER_ID, "dial_mode": "preview"})
    lead_id = await dialer.lead("+12125557391")
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id,
                                                            "campaign_id": OUTBOUND_CAMPAIGN},
                                        headers={**dialer.auth(), "Idempotency-Key": f"tls-{SUFFIX}"})
    assert response.status == 202, await response.text()
    call_id = (await response.json())["call_id"]

    async with asyncio.timeout(30):
        arrived = await carrier_app.arrived.get()
    channel = arrived.channel.id
    headers = {name: await carrier_app.ari.get_variable(channel, name)
               for name in ("FROM_HEADER", "PAI_HEADER", "SECURE_SIGNALING")}
    assert arrived.args[1] == "+12125557391"
    assert f"<sip:{CALLER_ID}@" in headers["FROM_HEADER"], headers
    assert f"<sip:{CALLER_ID}@" in headers["PAI_HEADER"], headers
    assert headers["SECURE_SIGNALING"] == "1", headers  # TLS
    await carrier_app.ari.answer(channel)
    assert await carrier_app.ari.get_variable(channel, "CHANNEL(rtp,secure,audio)") == "1"  # SRTP
    await asyncio.sleep(2.0)
    await carrier_app.ari.hangup(channel)

    call = await dialer.ended_call(call_id)
    assert call.lead_answered_at is not None and call.bridged_at is not None and call.caller_id == CALLER_ID


async def test_a_call_to_a_did_reaches_its_campaign(
        dialer: Dialer, carrier_app: CarrierApp, agency: AsteriskInstance) -> None:
    await _registered(agency)
    await dialer.seed("campaign_upsert", {"campaign_id": INBOUND_CAMPAIGN, "name": "Inbound line",
                                          "caller_id": "+18885550123", "dial_mode": "preview"})
    agent_id = f"agent-in-{SUFFIX}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": "Local/2102@agent-sim"})
    campaigns = dialer.services.campaigns
    assert campaigns is not None
    await campaigns.login(agent_id, [INBOUND_CAMPAIGN])
    await until(lambda: (s := campaigns.agent_state(agent_id)) is not None and s.state is AgentState.READY, 20)

    # The carrier rings the agency's DID (not the campaign's caller ID): the dialplan names the campaign.
    carrier_leg = f"carrier-in-{SUFFIX}"
    await carrier_app.ari.originate(carrier_leg, f"PJSIP/{DID}@{USERNAME}", app=carrier_app.ari.config.app,
                                    caller_id="+16175550142", ring_timeout=20)
    await until(lambda: (s := campaigns.agent_state(agent_id)) is not None and s.state is AgentState.ON_CALL, 20)
    await carrier_app.ari.hangup(carrier_leg)

    async def inbound_row_closed() -> bool:
        await dialer.services.outbox.flush(10)
        return bool(await dialer.fetch("SELECT 1 FROM calls WHERE campaign_id = $1 AND direction = 'inbound' "
                                       "AND ended_at IS NOT NULL", INBOUND_CAMPAIGN))

    await until(inbound_row_closed, 20, interval=0.3)
    await campaigns.logout(agent_id)


# ---- one clear error: a wrong password, a certificate from another CA -------------------------------
def _config_check(tmp_path: Path, trunk: Trunk, ca_file: str) -> dict[str, object]:
    password = tmp_path / "carrier-password"
    password.write_text(trunk.password + "\n")
    config = tmp_path / "dialer.toml"
    config.write_text(f"""
[[trunks]]
name = "{trunk.name}"
host = "{trunk.host}"
port = {trunk.port}
transport = "tls"
username = "{trunk.username}"
password_file = "{password}"
ca_file = "{ca_file}"
""")
    env = {**os.environ, "DIALER_CONFIG": str(config), "DIALER_SIP_TLS": "true",
           "DIALER_TLS_CERT_FILE": str(tmp_path / "unused.crt"), "DIALER_TLS_KEY_FILE": str(tmp_path / "unused.key")}
    result = subprocess.run([sys.executable, "-m", "dialer", "config", "check", "--json"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _trunk_errors(report: dict[str, object]) -> list[str]:
    errors = report["errors"]
    assert isinstance(errors, list)
    return [str(error) for error in errors if str(error).startswith("Trunk 'carrier-a'")]


async def test_a_wrong_password_is_one_clear_error(carrier: AsteriskInstance, pki: Pki, tmp_path: Path) -> None:
    wrong = carrier_trunk(carrier, pki, password="not-the-password")
    report = await asyncio.to_thread(_config_check, tmp_path, wrong, str(pki.ca))
    assert _trunk_errors(report) == [
        f"Trunk 'carrier-a': the carrier refused username '{USERNAME}' and its password (SIP 401 Unauthorized): "
        "check both with the carrier."]
    with structlog.testing.capture_logs() as logs:
        await log_trunk_checks([wrong], "", structlog.get_logger("dialer.trunks"))
    assert [(entry["event"], entry["log_level"], entry["problem"]) for entry in logs] == [
        ("trunk_check_failed", "error", _trunk_errors(report)[0])]


async def test_a_certificate_from_another_ca_is_one_clear_error(carrier: AsteriskInstance, pki: Pki,
                                                                tmp_path: Path) -> None:
    distrusting = carrier_trunk(carrier, pki, ca_file=str(pki.other_ca))
    report = await asyncio.to_thread(_config_check, tmp_path, distrusting, str(pki.other_ca))
    errors = _trunk_errors(report)
    assert len(errors) == 1, errors
    assert re.fullmatch(
        rf"Trunk 'carrier-a': the carrier's TLS certificate at 127\.0\.0\.1:{carrier.config.sip_tls_port} \(TLS\) is "
        r"not trusted \((self-signed certificate in certificate chain|unable to get local issuer certificate)\): "
        r"set the trunk's ca_file to the CA that signed it, or fix the host name\.", errors[0]), errors
    with structlog.testing.capture_logs() as logs:
        await log_trunk_checks([distrusting], "", structlog.get_logger("dialer.trunks"))
    assert [entry["problem"] for entry in logs if entry["event"] == "trunk_check_failed"] == errors
