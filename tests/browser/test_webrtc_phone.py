"""The browser phone (`dialer/web/static/softphone.js`) against the test run's real Asterisk.

Headless Chromium registers over SIP on a WebSocket as an agent's WebRTC endpoint
(`agent1001-web`); a call originated over ARI rings it; it answers; the far end (a recorded ARI
bridge) hears the page's fake microphone, found in the recording by correlation with the WAV
Chromium captures; the page receives the bridge's audio (WebRTC stats). Credentials are per
endpoint: another agent's, or a supervisor's, do not register as this agent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest

from dialer.ari.models import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHold,
    ChannelUnhold,
    StasisStart,
)
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.credentials import SipLogin
from tests.ari.faultproxy import FaultProxy
from tests.audio import SOUNDS, analyse_wav, contains_audio
from tests.browser.conftest import MICROPHONE_WAV, StasisEvents
from tests.browser.phone import BrowserPhone

AGENT = "agent1001-web"
# The page talks alone for this long: Chromium loops the microphone WAV from wherever its
# capture stands, so some 3-second stretch of the WAV (tried one second apart) lies whole in it.
TALKS_ALONE_S, STRETCH_S = 7.0, 3.0
# Normalised correlation (tests.audio): about 0.1 for speech that is not in the recording, 0.55-0.75
# seen for the page's voice through Chromium's audio processing, Opus and Asterisk's 8 kHz mix.
HEARD = 0.3
UNRELATED_WAV = SOUNDS / "machine-greeting.wav"  # speech the page never sends


def best_stretch(recording: bytes, source: Path) -> float:
    """The best correlation of any 3-second stretch of `source` with the recording."""
    whole_seconds = int(analyse_wav(source).seconds - STRETCH_S)
    return max(contains_audio(recording, source, start=float(start), seconds=STRETCH_S)
               for start in range(whole_seconds + 1))


async def registered(phone: BrowserPhone, login: SipLogin) -> None:
    await phone.start(login)
    status = await phone.wait_for("registration", "registered", "failed")
    assert status["registration"] == "registered", status
    assert status["microphone"] == "granted", status


async def answered_call(phone: BrowserPhone, stasis: StasisEvents, channel: str, **originate: str) -> dict[str, Any]:
    """Originate a call to the agent's browser endpoint, answer it on the page; the ringing status."""
    await stasis.ari.originate(channel, f"PJSIP/{AGENT}", app=stasis.ari.config.app, **originate)
    ringing = await phone.wait_for("call", "ringing")
    assert await phone.answer()
    await stasis.next(StasisStart, channel)
    await phone.wait_for("call", "active")
    return ringing


@pytest.mark.timeout(60)
async def test_the_page_answers_a_call_and_audio_flows_both_ways(
    asterisk: AsteriskInstance, stasis: StasisEvents, phone: BrowserPhone
) -> None:
    await registered(phone, asterisk.sip_credentials(AGENT))
    ari = stasis.ari
    channel, bridge, recording = (f"web-{uuid.uuid4().hex[:10]}{suffix}" for suffix in ("", "-bridge", "-rec"))

    ringing = await answered_call(phone, stasis, channel, caller_id="Lead Test <2125550142>", formats="opus,ulaw")
    assert ringing["caller"] == {"name": "Lead Test", "number": "2125550142"}

    await ari.create_bridge(bridge)
    await ari.add_channel(bridge, channel)
    await ari.record_bridge(bridge, recording)
    # The page talks while the far end listens (as a lead does while the agent introduces
    # themselves); then the far end talks, a recorded person, and the page receives it.
    await asyncio.sleep(TALKS_ALONE_S)
    await ari.play_bridge(bridge, f"sound:{asterisk.base}/sounds/person-talk")
    await asyncio.sleep(3.0)
    stats = await phone.stats()
    await ari.stop_recording(recording)

    assert stats is not None
    assert stats["codec"] == "audio/opus", stats
    assert stats["inbound"]["packetsReceived"] > 100, stats
    assert stats["inbound"]["totalAudioEnergy"] > 0, stats
    assert stats["outbound"]["packetsSent"] > 100, stats

    audio = await ari.stored_recording_file(recording)
    score = best_stretch(audio, MICROPHONE_WAV)
    assert score > HEARD, f"the page's microphone was not heard in the bridge (correlation {score:.2f})"
    unrelated = best_stretch(audio, UNRELATED_WAV)
    assert unrelated < HEARD / 2, f"the measure does not tell voices apart ({unrelated:.2f} for another prompt)"

    await phone.hang_up()
    destroyed = await stasis.next(ChannelDestroyed, channel)
    assert destroyed.cause == 16  # normal clearing: the page sent BYE
    await phone.wait_for("call", "ended")
    await ari.destroy_bridge(bridge)
    await ari.delete_stored_recording(recording)


@pytest.mark.timeout(60)
async def test_hold_mute_and_keypad_reach_asterisk(
    asterisk: AsteriskInstance, stasis: StasisEvents, phone: BrowserPhone
) -> None:
    await registered(phone, asterisk.sip_credentials(AGENT))
    ari = stasis.ari
    channel = f"web-{uuid.uuid4().hex[:10]}"
    await answered_call(phone, stasis, channel)  # G.711: ARI's default format

    assert await phone.send_dtmf("7")
    dtmf = await stasis.next(ChannelDtmfReceived, channel)
    assert dtmf.digit == "7"

    assert await phone.hold(True)
    await stasis.next(ChannelHold, channel)
    assert (await phone.status())["held"] is True
    assert await phone.hold(False)
    await stasis.next(ChannelUnhold, channel)

    await phone.mute(True)
    assert (await phone.status())["muted"] is True
    await phone.mute(False)

    await ari.hangup(channel)
    await phone.wait_for("call", "ended")


@pytest.mark.timeout(30)
async def test_another_agents_credentials_do_not_register_as_this_agent(
    asterisk: AsteriskInstance, phone: BrowserPhone
) -> None:
    mine, theirs = asterisk.sip_credentials(AGENT), asterisk.sip_credentials("agent1002-web")
    impostor = SipLogin(AGENT, theirs.username, theirs.password, mine.sip_uri, mine.ws_url, None)
    await phone.start(impostor)
    status = await phone.wait_for("registration", "failed", "registered")
    assert status["registration"] == "failed", status
    assert status["lastError"].startswith(("401", "403")), status
    # ... nor with this agent's name and the other agent's password
    await phone.start(SipLogin(AGENT, AGENT, theirs.password, mine.sip_uri, mine.ws_url, None))
    assert (await phone.wait_for("registration", "failed", "registered"))["registration"] == "failed"


@pytest.mark.timeout(30)
async def test_a_supervisor_credential_cannot_register_as_an_agent(
    asterisk: AsteriskInstance, phone: BrowserPhone
) -> None:
    agent, supervisor = asterisk.sip_credentials(AGENT), asterisk.sip_credentials("supervisor01-web")
    await phone.start(SipLogin(AGENT, supervisor.username, supervisor.password, agent.sip_uri, agent.ws_url, None))
    status = await phone.wait_for("registration", "failed", "registered")
    assert status["registration"] == "failed", status
    # while the supervisor's own browser endpoint takes it
    await phone.start(supervisor)
    assert (await phone.wait_for("registration", "failed", "registered"))["registration"] == "registered"


@pytest.mark.timeout(60)
async def test_the_phone_registers_again_after_a_network_blip_and_takes_the_next_call(
    asterisk: AsteriskInstance, stasis: StasisEvents, phone: BrowserPhone
) -> None:
    login = asterisk.sip_credentials(AGENT)
    async with FaultProxy("127.0.0.1", asterisk.config.ari_port) as proxy:
        assert login.ws_url is not None
        through_proxy = dataclasses.replace(login, ws_url=login.ws_url.replace(str(asterisk.config.ari_port),
                                                                                str(proxy.port)))
        await registered(phone, through_proxy)
        await phone.page.evaluate(
            "() => { window.seen = []; window.phone.addEventListener('change', "
            "(event) => window.seen.push(event.detail.registration)); }"
        )
        proxy.cut_all()  # the WebSocket drops, as on a Wi-Fi hand-over
        # (it reconnects at once: the states it went through are in window.seen)
        await phone.page.wait_for_function("() => window.seen.includes('reconnecting')", timeout=10_000)
        recovered = await phone.wait_for("registration", "registered", within=15)
        assert recovered["lastError"] is None
        seen = await phone.page.evaluate("() => window.seen")
        assert seen[0] == "reconnecting" and seen[-1] == "registered" and "failed" not in seen, seen
        assert proxy.connections >= 2

        channel = f"web-{uuid.uuid4().hex[:10]}"
        await stasis.ari.originate(channel, f"PJSIP/{AGENT}", app=stasis.ari.config.app)
        await phone.wait_for("call", "ringing")
        await stasis.ari.hangup(channel)
        await phone.wait_for("call", "ended")
