"""The provisioned Asterisk: version, ARI, the simulated public network, a real softphone."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import aiohttp
import pytest

from dialer.ari.auth import basic_auth, basic_auth_header
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.smoke import place_call, place_calls
from tests.softphone import SOURCE_TONE_HZ

pytestmark = pytest.mark.integration


def _ari_get(asterisk: AsteriskInstance, path: str) -> Any:
    request = urllib.request.Request(f"{asterisk.ari_url}{path}")
    request.add_header("Authorization", basic_auth(asterisk.config.ari_user, asterisk.config.ari_password))
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.timeout(30)
def test_ari_reports_asterisk_22_or_newer(asterisk: AsteriskInstance) -> None:
    version = _ari_get(asterisk, "/asterisk/info")["system"]["version"]
    assert int(version.split(".")[0]) >= 22


@pytest.mark.timeout(30)
async def test_event_websocket_connects_and_registers_the_app(asterisk: AsteriskInstance) -> None:
    auth = basic_auth_header(asterisk.config.ari_user, asterisk.config.ari_password)
    url = asterisk.ari_url.replace("http://", "ws://") + f"/events?app={asterisk.config.ari_app}"
    async with aiohttp.ClientSession(headers=auth) as session, session.ws_connect(url) as ws:
        assert not ws.closed
        async with session.get(f"{asterisk.ari_url}/applications/{asterisk.config.ari_app}") as response:
            assert response.status == 200


@pytest.mark.timeout(30)
def test_ari_rejects_wrong_credentials(asterisk: AsteriskInstance) -> None:
    request = urllib.request.Request(f"{asterisk.ari_url}/asterisk/info")
    request.add_header("Authorization", "Basic d3Jvbmc6d3Jvbmc=")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    raised.value.close()
    assert raised.value.code == 401


# number -> (answered, hang-up cause, SIP code or None); see asterisk-config/README.md
SIMULATED_NETWORK = {
    "person talks 2 s": ("+12125551102", True, 16, None),
    "answering machine": ("+13055552101", True, 16, None),
    "busy": ("+14155553100", False, 17, 486),
    "no answer until the caller gives up": ("+17135554100", False, 19, 480),
    "unallocated number": ("+16175555100", False, 1, 404),
    "congestion": ("+13125556100", False, 34, 503),
    "answers and hangs up at once": ("+12065557100", True, 16, None),
    "rejected": ("+14045558100", False, 21, 403),
}


@pytest.mark.timeout(60)
async def test_each_behaviour_of_the_simulated_network_ends_with_its_cause(asterisk: AsteriskInstance) -> None:
    outcomes = await place_calls(
        asterisk.ari_url,
        asterisk.config.ari_user,
        asterisk.config.ari_password,
        asterisk.config.ari_app,
        [number for number, *_ in SIMULATED_NETWORK.values()],
        ring_timeout=4,
        overall_timeout=45,
    )
    for (behaviour, (_number, answered, cause, sip_code)), outcome in zip(
        SIMULATED_NETWORK.items(), outcomes, strict=True
    ):
        assert (outcome.answered, outcome.cause, outcome.sip_code) == (answered, cause, sip_code), behaviour


@pytest.mark.timeout(40)
async def test_ring_and_talk_times_follow_the_dialed_number(asterisk: AsteriskInstance) -> None:
    outcome = await place_call(
        asterisk.ari_url,
        asterisk.config.ari_user,
        asterisk.config.ari_password,
        asterisk.config.ari_app,
        "+12125551303",
        overall_timeout=30,
    )
    assert outcome.answered and outcome.cause == 16
    assert outcome.ring_seconds is not None and 2.5 <= outcome.ring_seconds <= 4.5
    assert outcome.talk_seconds is not None and 2.5 <= outcome.talk_seconds <= 4.5


@pytest.mark.timeout(60)
async def test_softphone_registers_auto_answers_and_audio_flows_both_ways(
    asterisk: AsteriskInstance, softphone_factory: Any
) -> None:
    from tests.audio import analyse_wav

    phone = softphone_factory("agent1002")
    auth = basic_auth_header(asterisk.config.ari_user, asterisk.config.ari_password)
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(
            f"{asterisk.ari_url}/channels",
            params={"endpoint": "PJSIP/agent1002", "context": "softphone-check", "extension": "s", "priority": "1"},
            json={"variables": {"CHECK_SECONDS": "5"}},
        ) as response:
            assert response.status == 200, await response.text()
            channel_id = (await response.json())["id"]
    await asyncio.to_thread(phone.wait_for_call_end, 1, 30.0)
    assert phone.answered_calls() == 1

    heard_by_phone = phone.last_heard()
    assert not heard_by_phone.silent and heard_by_phone.voiced_fraction > 0.3

    heard_by_asterisk = asterisk.checks_dir / f"{channel_id}-heard.wav"
    for _ in range(50):
        if heard_by_asterisk.exists() and heard_by_asterisk.stat().st_size > 1000:
            break
        await asyncio.sleep(0.1)
    report = analyse_wav(heard_by_asterisk)
    assert not report.silent
    assert abs(report.dominant_hz - SOURCE_TONE_HZ) < 10
