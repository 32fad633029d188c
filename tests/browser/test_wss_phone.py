"""The browser phone over wss:// (TLS) on Asterisk's own HTTPS server, in Chromium.

An Asterisk instance of its own with `wss = true` and a certificate made by the test. This
module's Chromium trusts that one certificate (`--ignore-certificate-errors-spki-list` names its
public key: Chromium's way of trusting a certificate for tests without a CA store); a Chromium
without it refuses the connection, so TLS is really checked. The agent's browser endpoint
registers over wss://, a call rings it, the page answers and receives audio (DTLS-SRTP media).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from dialer.ari.models import StasisStart
from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.ports import free_local_port
from dialer.provision.tls import self_signed, spki_sha256
from dialer.settings import from_environment
from tests.browser.conftest import ChromiumProcess, StasisEvents, StaticServer, launch_chromium
from tests.browser.phone import BrowserPhone
from tests.conftest import RUN_ID

AGENT = "agent1001-web"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("wss-tls")
    cert, key = folder / "wss.crt", folder / "wss.key"
    self_signed(cert, key, ["127.0.0.1", "localhost"], dt.datetime.now(dt.UTC))
    return cert, key


@pytest.fixture(scope="module")
def asterisk(certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """This module's Asterisk (the harness's `stasis` uses it): wss:// on its HTTPS server."""
    cert, key = certificate
    settings = from_environment(
        {}, instance=f"test-wss-{RUN_ID}", ari_port=free_local_port(), sip_port=free_local_port(),
        carrier_port=free_local_port(), ari_password=f"test-{uuid.uuid4().hex}",
        state_root=str(tmp_path_factory.mktemp("wss-state")), rtp_start=43002, rtp_end=44000, agents=1,
        supervisors=1, wss=True, wss_port=free_local_port(), tls_cert_file=str(cert), tls_key_file=str(key),
    )
    assert settings.problems() == []
    instance = AsteriskInstance.for_settings(ensure_install(settings, say=lambda _: None), settings)
    with instance.running(remove=True):
        yield instance


@pytest.fixture(scope="module")
def chromium(certificate: tuple[Path, Path]) -> Iterator[ChromiumProcess]:
    """This module's Chromium: the harness's, trusting the test's certificate and no other."""
    with launch_chromium(f"--ignore-certificate-errors-spki-list={spki_sha256(certificate[0])}") as process:
        yield process


@pytest.mark.timeout(60)
async def test_the_browser_phone_registers_over_wss_and_takes_a_call(
    asterisk: AsteriskInstance, stasis: StasisEvents, phone: BrowserPhone
) -> None:
    login = asterisk.sip_credentials(AGENT)
    assert login.ws_url == login_url(asterisk)
    await phone.start(login)
    status = await phone.wait_for("registration", "registered", "failed")
    assert status["registration"] == "registered", status

    channel = f"wss-{uuid.uuid4().hex[:10]}"
    await stasis.ari.originate(channel, f"PJSIP/{AGENT}", app=stasis.ari.config.app)
    await phone.wait_for("call", "ringing")
    assert await phone.answer()
    await stasis.next(StasisStart, channel)
    await phone.wait_for("call", "active")
    await stasis.ari.play(channel, f"sound:{asterisk.base}/sounds/person-talk")
    await asyncio.sleep(3.0)
    stats = await phone.stats()
    assert stats is not None and stats["inbound"]["packetsReceived"] > 50, stats
    assert stats["inbound"]["totalAudioEnergy"] > 0, stats
    await stasis.ari.hangup(channel)
    await phone.wait_for("call", "ended")


def login_url(instance: AsteriskInstance) -> str:
    return f"wss://127.0.0.1:{instance.config.wss_port}/ws"


@pytest.mark.timeout(60)
async def test_a_browser_that_does_not_trust_the_certificate_cannot_connect(
    asterisk: AsteriskInstance, static_server: StaticServer
) -> None:
    with launch_chromium() as untrusting:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.connect_over_cdp(untrusting.cdp_url)
            try:
                page = await (await browser.new_context()).new_page()
                phone = BrowserPhone(page)
                await phone.open_check_page(static_server.url("phone-check.html"))
                await phone.start(asterisk.sip_credentials(AGENT))
                await asyncio.sleep(4.0)
                status = await phone.status()
                # The TLS handshake fails: the WebSocket closes abnormally, again and again.
                assert status["registration"] == "reconnecting", status
                assert status["lastError"].startswith(f"WebSocket closed {login_url(asterisk)} (code: 1006)"), status
                await phone.stop()
            finally:
                await browser.close()
