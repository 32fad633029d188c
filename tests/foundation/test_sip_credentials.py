"""Per-endpoint SIP credentials, the endpoint plan, the DTLS certificate: pure parts and files.

What Asterisk is given is checked against the running test instance too: digests only, no
password in its configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import stat
from pathlib import Path

import pytest

from dialer.provision.asterisk import SIP_REALM, AsteriskInstance, ProvisionError
from dialer.provision.credentials import CredentialsError, CredentialStore, md5_digest, sip_credentials
from dialer.provision.dtls import (
    RENEW_BEFORE,
    certificate_fingerprint,
    certificate_valid_until,
    ensure_dtls_certificate,
)
from dialer.provision.sip_endpoints import (
    ENDPOINT_NAME,
    PhoneKind,
    Role,
    desktop_endpoint,
    endpoint_plan,
    ice_host_candidates,
    pjsip_sections,
    web_endpoint,
)
from dialer.settings import from_environment

NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def provision(path: Path, agents: int = 2, supervisors: int = 1) -> CredentialStore:
    return CredentialStore.provision(
        path, endpoint_plan(agents, supervisors), realm="dialer", sip_domain="127.0.0.1", udp_port=5060,
        ws_url="ws://127.0.0.1:8088/ws",
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- the endpoint plan ---------------------------------------------------------------------------
def test_every_person_has_a_desktop_and_a_browser_endpoint() -> None:
    plan = endpoint_plan(agents=3, supervisors=2)
    names = [endpoint.name for endpoint in plan]
    assert names == ["agent1001", "agent1001-web", "agent1002", "agent1002-web", "agent1003", "agent1003-web",
                     "supervisor01", "supervisor01-web", "supervisor02", "supervisor02-web"]
    assert all(ENDPOINT_NAME.match(name) for name in names)
    by_name = {endpoint.name: endpoint for endpoint in plan}
    assert by_name["agent1002-web"].kind is PhoneKind.WEBRTC and by_name["agent1002"].kind is PhoneKind.DESKTOP
    assert by_name["supervisor02-web"].role is Role.SUPERVISOR
    assert by_name["agent1001-web"].dial_string == "PJSIP/agent1001-web"
    # both phones of a person show the same caller ID
    assert (by_name["agent1003"].caller_name, by_name["agent1003"].caller_number) == ("Agent 1003", "1003")
    assert (by_name["agent1003-web"].caller_name, by_name["agent1003-web"].caller_number) == ("Agent 1003", "1003")
    assert web_endpoint("agent1003") == web_endpoint("agent1003-web") == "agent1003-web"
    assert desktop_endpoint("agent1003-web") == desktop_endpoint("agent1003") == "agent1003"


@pytest.mark.parametrize(("agents", "supervisors"), [(-1, 0), (0, -1), (9000, 0), (0, 100)])
def test_an_impossible_plan_is_refused(agents: int, supervisors: int) -> None:
    with pytest.raises(ValueError):
        endpoint_plan(agents, supervisors)


def test_pjsip_sections_carry_digests_and_the_template_of_each_kind() -> None:
    plan = endpoint_plan(1, 1)
    digests = {endpoint.name: md5_digest(endpoint.name, "dialer", f"secret-{endpoint.name}") for endpoint in plan}
    text = pjsip_sections(plan, digests, "dialer")
    assert "[agent1001](desktop-endpoint)" in text and "[agent1001-web](webrtc-endpoint)" in text
    assert "[supervisor01-web](webrtc-endpoint)" in text
    assert f"password_digest = MD5:{digests['supervisor01-web']}" in text
    assert "secret-" not in text and "password =" not in text
    assert text.count("realm = dialer") == 4
    with pytest.raises(ValueError, match="not an MD5"):
        pjsip_sections(plan, {**digests, "agent1001": "plaintext"}, "dialer")


def test_md5_digest_is_pjsips_password_digest() -> None:
    # The example of Asterisk's pjsip.conf.sample: echo -n "fred:asterisk:mypass" | openssl dgst -md5
    assert md5_digest("fred", "asterisk", "mypass") == "43a8d9be3da524f9a59ca0593d7b1b5d"


def test_ice_host_candidates_announce_the_media_address_for_every_interface() -> None:
    text = ice_host_candidates(["127.0.0.1", "192.0.2.2", "198.51.100.7", "192.0.2.2"], "127.0.0.1")
    assert text.splitlines() == ["192.0.2.2 => 127.0.0.1", "198.51.100.7 => 127.0.0.1"]
    assert ice_host_candidates(["127.0.0.1"], "127.0.0.1") == ""


# ---- the credentials file --------------------------------------------------------------------------
def test_credentials_are_generated_per_endpoint_into_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sip-credentials.json"
    store = provision(path)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    passwords = [entry.password for entry in store.entries.values()]
    assert len(passwords) == 6 and len(set(passwords)) == 6  # no shared password
    assert all(len(password) >= 24 for password in passwords)
    browser = sip_credentials("agent1001-web", path)
    assert (browser.username, browser.sip_uri, browser.ws_url, browser.udp_port) == (
        "agent1001-web", "sip:agent1001-web@127.0.0.1", "ws://127.0.0.1:8088/ws", None)
    desk = sip_credentials("agent1001", path)
    assert (desk.ws_url, desk.udp_port) == (None, 5060)
    username, password, ws_url = browser
    assert (username, password, ws_url) == (browser.username, browser.password, browser.ws_url)
    assert browser.password not in repr(browser) and browser.password not in repr(store)


def test_provisioning_again_keeps_passwords_adds_new_endpoints_and_drops_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "sip-credentials.json"
    first = provision(path, agents=2)
    second = provision(path, agents=3)
    assert second.entries["agent1002-web"].password == first.entries["agent1002-web"].password
    assert "agent1003-web" in second.entries and "agent1003-web" not in first.entries
    third = provision(path, agents=1)
    assert "agent1002" not in third.entries
    assert third.entries["agent1001"].password == first.entries["agent1001"].password
    path.chmod(0o644)
    provision(path, agents=1)
    assert mode(path) == 0o600  # the mode is enforced even when nothing changed


def test_missing_unknown_or_damaged_credentials_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "sip-credentials.json"
    with pytest.raises(CredentialsError, match="provision the Asterisk instance first"):
        sip_credentials("agent1001-web", path)
    provision(path)
    with pytest.raises(CredentialsError, match="No SIP endpoint named 'agent9999-web'"):
        sip_credentials("agent9999-web", path)
    data = json.loads(path.read_text())
    del data["endpoints"]["agent1001"]["password"]
    path.write_text(json.dumps(data))
    with pytest.raises(CredentialsError, match="damaged"):
        sip_credentials("agent1001", path)
    # provisioning replaces a damaged file with fresh credentials
    assert sip_credentials("agent1001", provision(path).path).password


# ---- the DTLS certificate ---------------------------------------------------------------------------
def test_the_dtls_certificate_is_made_once_and_renewed_before_it_expires(tmp_path: Path) -> None:
    cert, key = tmp_path / "keys" / "dtls.crt", tmp_path / "keys" / "dtls.key"
    assert ensure_dtls_certificate(cert, key, "dialer-engine test", NOW) is True
    assert mode(key) == 0o600
    fingerprint = certificate_fingerprint(cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint)
    assert ensure_dtls_certificate(cert, key, "dialer-engine test", NOW + dt.timedelta(days=30)) is False
    assert certificate_fingerprint(cert) == fingerprint
    expires = certificate_valid_until(cert)
    assert expires is not None
    assert ensure_dtls_certificate(cert, key, "dialer-engine test", expires - RENEW_BEFORE + dt.timedelta(hours=1))
    assert certificate_fingerprint(cert) != fingerprint


# ---- settings -----------------------------------------------------------------------------------------
def test_supervisors_and_the_credentials_file_come_from_settings(tmp_path: Path) -> None:
    settings = from_environment({"DIALER_SUPERVISORS": "12", "DIALER_STATE_DIR": str(tmp_path)})
    assert settings.supervisors == 12
    assert settings.sip_credentials_file == tmp_path / "sip-credentials.json"
    explicit = from_environment({"DIALER_SIP_CREDENTIALS_FILE": str(tmp_path / "x.json")})
    assert explicit.sip_credentials_file == tmp_path / "x.json"


def test_the_development_ari_password_is_announced() -> None:
    default = from_environment({})
    assert default.default_password_warning is not None
    assert "DIALER_ARI_PASSWORD" in default.default_password_warning
    assert from_environment({"DIALER_ARI_PASSWORD": "s3cret-of-ours"}).default_password_warning is None


# ---- what the running Asterisk was given ---------------------------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(60)
def test_asterisk_gets_digests_only_and_every_endpoint_is_configured(asterisk: AsteriskInstance) -> None:
    store = CredentialStore.load(asterisk.credentials_file)
    pjsip_conf = asterisk.host_path(asterisk.base / "etc" / "pjsip.conf")
    text = pjsip_conf.read_text()
    assert mode(pjsip_conf) == 0o600
    for name, entry in store.entries.items():
        assert entry.password not in text
        assert f"password_digest = MD5:{md5_digest(name, SIP_REALM, entry.password)}" in text
    endpoints = asterisk.cli("pjsip show endpoints")
    for endpoint in asterisk.sip_endpoints():
        assert f" {endpoint.name}/" in endpoints
    web = asterisk.cli("pjsip show endpoint agent1001-web")
    assert re.search(r"webrtc\s+: yes", web) and re.search(r"media_encryption\s+: dtls", web)
    assert re.search(r"dtls_cert_file\s+: \S+/keys/dtls.crt", web)
    assert "transport-ws" in asterisk.cli("pjsip show transports")


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_a_running_instance_without_credentials_asks_for_a_restart(asterisk: AsteriskInstance) -> None:
    moved = asterisk.credentials_file.with_name("moved-away.json")
    asterisk.credentials_file.rename(moved)
    try:
        with pytest.raises(ProvisionError, match=r"restart it \('dialer stack down', then 'dialer stack up'\)"):
            asterisk.start()
    finally:
        moved.rename(asterisk.credentials_file)
    asterisk.start()  # running, credentials in place: nothing to do
