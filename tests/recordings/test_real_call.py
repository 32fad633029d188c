"""A real call through the real Asterisk: each leg recorded from its own snoop channel and the
bridge recorded mixed, then archived as the runtime does: two channels, and mixed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialer.ari.client import AriClient
from dialer.ari.dispatch import Dispatcher
from dialer.ari.errors import NotFound
from dialer.ari.events import EventStream
from dialer.ari.models import ChannelStateChange, RecordingFinished, RecordingStarted, StasisStart
from recordings.archive import archive_legs, archive_recording
from recordings.crypto import Keyring
from recordings.reader import FileRef, RecordingReader, representation
from recordings.transcode import AudioFormat
from tests.ari.test_ari_integration import CallEvents, config_for, ignore, running
from tests.recordings.conftest import RATE, samples_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

AGENT_TONE_HZ = 440.0  # Local/...@agent-sim plays asterisk-config/sounds/agent-tone.wav
PERSON_TALKS_30S = "2125551030"


def tone_share(samples: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1 / RATE)
    total = float(spectrum[1:].sum())
    return float(spectrum[np.abs(frequencies - hz) < 10].sum()) / total if total else 0.0


async def _all_up(call: CallEvents, *channel_ids: str) -> None:
    waiting = set(channel_ids)
    while waiting:
        change, _ = await call.next(ChannelStateChange)
        if change.channel.state == "Up":
            waiting.discard(change.channel.id)


async def test_a_calls_legs_are_archived_as_two_channels_and_its_bridge_as_one(
        asterisk: Any, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    agent, lead, bridge = f"agent-{suffix}", f"lead-{suffix}", f"bridge-{suffix}"
    agent_snoop, lead_snoop = f"snoop-a-{suffix}", f"snoop-l-{suffix}"
    names = {"agent": f"leg-agent-{suffix}", "lead": f"leg-lead-{suffix}", "mixed": f"call-{suffix}-recording"}
    keyring = Keyring.load_or_create(tmp_path / "keys")
    call = CallEvents()
    async with AriClient(config_for(asterisk, app=f"rec-{suffix}")) as ari, Dispatcher(ignore) as dispatcher:
        stream = EventStream(ari, dispatcher)
        async with running(stream):
            async with asyncio.timeout(15):
                await stream.wait_connected()
            dispatcher.register("call", call, channel_ids=[agent, lead, agent_snoop, lead_snoop], bridge_ids=[bridge])
            await ari.create_channel(agent, "Local/2003@agent-sim")
            await ari.create_channel(lead, f"Local/{PERSON_TALKS_30S}@pstn-sim")
            started = set()
            while started != {agent, lead}:
                started.add((await call.next(StasisStart))[0].channel.id)
            for channel in (agent, lead):
                await ari.dial(channel, ring_timeout=10)
            await _all_up(call, agent, lead)
            await ari.create_bridge(bridge)
            await ari.add_channel(bridge, [agent, lead])
            # Each leg's own voice (spy=in: what the channel sends), recorded apart.
            for channel, snoop in ((agent, agent_snoop), (lead, lead_snoop)):
                await ari.snoop(channel, snoop, spy="in")
                await call.next(StasisStart, snoop)  # one at a time: nothing else is skipped
            await ari.record_channel(agent_snoop, names["agent"])
            await ari.record_channel(lead_snoop, names["lead"])
            await ari.record_bridge(bridge, names["mixed"], format="wav")
            for _ in range(3):
                await call.next(RecordingStarted)
            await asyncio.sleep(5.0)
            for name in names.values():
                await ari.stop_recording(name)
            for _ in range(3):
                await call.next(RecordingFinished)
            for channel in (agent_snoop, lead_snoop, agent, lead):
                with contextlib.suppress(NotFound):  # a snoop goes with the channel it spies on
                    await ari.hangup(channel)
            await ari.destroy_bridge(bridge)

            archive_dir = tmp_path / "archive"
            stereo = await archive_legs(ari, names["agent"], names["lead"], archive_dir,
                                        recording_id=f"call-{suffix}-stereo", keyring=keyring)
            mixed = await archive_recording(ari, names["mixed"], archive_dir, keyring=keyring)
            for name in names.values():  # Asterisk's copies are gone once archived
                with pytest.raises(NotFound):
                    await ari.get_stored_recording(name)

    assert (stereo.format, stereo.channels, stereo.channel_layout) == ("opus", 2, "agent,lead")
    assert (mixed.format, mixed.channels) == ("opus", 1)
    assert 4.0 < (stereo.duration_seconds or 0) < 7.0 and 4.0 < (mixed.duration_seconds or 0) < 7.0
    reader = RecordingReader(archive_dir, keyring)
    with reader.open(FileRef(stereo.recording_id, stereo.storage_uri, stereo.sha256)) as opened:
        opened.check()
        both, _ = samples_of(b"".join(representation(opened, AudioFormat.WAV).chunks()))
    with reader.open(FileRef(mixed.recording_id, mixed.storage_uri, mixed.sha256)) as opened:
        opened.check()
        one, _ = samples_of(b"".join(representation(opened, AudioFormat.WAV).chunks()))
    # The agent's tone is on the left channel only (measured 0.98 of its energy), the lead's
    # speech on the right (tone 0.02, RMS ~830); the bridge recording has both (tone 0.97, and
    # ~1000 RMS besides it).
    assert tone_share(both[:, 0], AGENT_TONE_HZ) > 0.8
    speech = float(np.sqrt(np.mean(both[:, 1] ** 2)))
    assert tone_share(both[:, 1], AGENT_TONE_HZ) < 0.1 and speech > 300
    mixed_besides_tone = float(np.sqrt(np.mean(one[:, 0] ** 2) * (1 - tone_share(one[:, 0], AGENT_TONE_HZ))))
    assert tone_share(one[:, 0], AGENT_TONE_HZ) > 0.5 and mixed_besides_tone > speech / 3
