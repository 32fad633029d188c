"""The ARI client, event stream and dispatcher against the real Asterisk the project provisions.

Calls go to the simulated public network of `asterisk-config/extensions.conf` (`pstn-sim`):
the last four digits of the number choose the behaviour, e.g. 2125551030 = a person (1)
who answers after 0 s of ringing and talks for 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from structlog.testing import capture_logs

from dialer.ari.client import AriClient, AriConfig
from dialer.ari.dispatch import Dispatcher
from dialer.ari.errors import (
    ApplicationReplacedError,
    AriUnavailable,
    Conflict,
    NotFound,
    StaleGenerationError,
)
from dialer.ari.events import EventStream, Snapshot
from dialer.ari.models import (
    ChannelDestroyed,
    ChannelEnteredBridge,
    ChannelLeftBridge,
    ChannelStateChange,
    Event,
    PlaybackFinished,
    RecordingFinished,
    RecordingStarted,
    StasisEnd,
    StasisStart,
)
from tests.ari.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

PERSON_TALKS_30S = "2125551030"
E = TypeVar("E", bound=Event)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _setting(asterisk: Any, name: str) -> str:
    # The `asterisk` fixture exposes ari_user/ari_password/app, or (AsteriskInstance) its `config`.
    value = getattr(asterisk, name, None)
    if value is None:
        value = getattr(asterisk.config, "ari_app" if name == "app" else name)
    return str(value)


def config_for(asterisk: Any, *, app: str | None = None, url: str | None = None) -> AriConfig:
    return AriConfig(
        url=url or asterisk.ari_url,
        user=_setting(asterisk, "ari_user"),
        password=_setting(asterisk, "ari_password"),
        app=app or _setting(asterisk, "app"),
    )


class CallEvents:
    """A call object for tests: queues the events routed to it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Event, int]] = asyncio.Queue()

    async def handle_event(self, event: Event, generation: int) -> None:
        self.queue.put_nowait((event, generation))

    async def next(self, event_type: type[E], channel_id: str | None = None, seconds: float = 15.0) -> tuple[E, int]:
        """The next event of this type (and of this channel, if given); others are skipped."""
        async with asyncio.timeout(seconds):
            while True:
                event, generation = await self.queue.get()
                if isinstance(event, event_type) and (
                    channel_id is None or getattr(getattr(event, "channel", None), "id", None) == channel_id
                ):
                    return event, generation


class Snapshots:
    def __init__(self) -> None:
        self.seen: list[tuple[int, Snapshot]] = []

    async def __call__(self, generation: int, snapshot: Snapshot) -> None:
        self.seen.append((generation, snapshot))


async def ignore(event: Event, generation: int) -> None:
    pass


@contextlib.asynccontextmanager
async def running(stream: EventStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run(), name=f"ari-events-{stream.app}")
    try:
        yield task
    finally:
        await stream.stop()
        with contextlib.suppress(ApplicationReplacedError):
            async with asyncio.timeout(10):
                await task


@pytest.mark.timeout(30)
async def test_info_reports_asterisk_22_or_newer(asterisk: Any) -> None:
    async with AriClient(config_for(asterisk)) as ari:
        info = await ari.asterisk_info()
        ping = await ari.ping()
    assert info.system is not None
    assert int(info.system.version.split(".")[0]) >= 22, info.system.version
    assert ping.ping == "pong"


@pytest.mark.timeout(30)
async def test_404_and_409_are_typed_errors(asterisk: Any) -> None:
    async with AriClient(config_for(asterisk)) as ari:
        with pytest.raises(NotFound) as missing:
            await ari.get_channel(unique("no-such-channel"))
        assert missing.value.status == 404 and "Channel not found" in missing.value.message
        with pytest.raises(NotFound):
            await ari.hangup(unique("no-such-channel"))
        bridge_id = unique("bridge")
        bridge = await ari.create_bridge(bridge_id)
        assert bridge.id == bridge_id and "mixing" in bridge.bridge_type
        try:
            with pytest.raises(Conflict) as conflict:
                await ari.create_bridge(bridge_id)
            assert conflict.value.status == 409
        finally:
            await ari.destroy_bridge(bridge_id)
        with pytest.raises(NotFound):
            await ari.get_bridge(bridge_id)


@pytest.mark.timeout(30)
async def test_unreachable_asterisk_is_ari_unavailable_after_retries(asterisk: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = config_for(asterisk, url=f"http://127.0.0.1:{closed_port}/ari")
    with capture_logs() as logs:
        async with AriClient(config) as ari:
            with pytest.raises(AriUnavailable):
                await ari.asterisk_info()
            with pytest.raises(AriUnavailable):
                await ari.answer("any")  # not idempotent: no retry
    assert [entry["method"] for entry in logs if entry["event"] == "ari.retry"] == ["GET", "GET"]


@pytest.mark.timeout(60)
async def test_stream_receives_stasis_start_and_the_call_flow_works(asterisk: Any) -> None:
    app = unique("it-app")
    snapshots = Snapshots()
    call = CallEvents()
    channel_id, bridge_id, recording = unique("lead"), unique("bridge"), unique("rec")
    async with AriClient(config_for(asterisk, app=app)) as ari, Dispatcher(ignore) as dispatcher:
        stream = EventStream(ari, dispatcher, on_connected=snapshots)
        async with running(stream):
            async with asyncio.timeout(15):
                generation = await stream.wait_connected()
            assert snapshots.seen[0][0] == generation == 1
            assert snapshots.seen[0][1].application.name == app

            # Register before originating: the call exists before its first event.
            dispatcher.register("call-1", call, channel_ids=[channel_id], bridge_ids=[bridge_id])
            created = await ari.create_channel(channel_id, f"Local/{PERSON_TALKS_30S}@pstn-sim", app_args=["lead", "42"])
            assert created is not None and created.id == channel_id
            start, start_generation = await call.next(StasisStart)
            assert start.channel.id == channel_id and start.args == ("lead", "42")
            assert start_generation == generation

            await ari.dial(channel_id, ring_timeout=10)
            while True:
                change, _ = await call.next(ChannelStateChange)
                if change.channel.state == "Up":
                    break

            await ari.set_variable(channel_id, "DIALER_CALL_ID", "call-1")
            assert await ari.get_variable(channel_id, "DIALER_CALL_ID") == "call-1"

            await ari.create_bridge(bridge_id)
            await ari.add_channel(bridge_id, channel_id)
            entered, _ = await call.next(ChannelEnteredBridge)
            assert entered.bridge.id == bridge_id

            live = await ari.record_bridge(bridge_id, recording, format="wav")
            assert live.target_uri == f"bridge:{bridge_id}"
            await call.next(RecordingStarted)
            playback = await ari.play_bridge(bridge_id, "tone:ring;tonezone=us", playback_id=unique("pb"))
            await asyncio.sleep(1.0)
            await ari.stop_playback(playback.id)
            await call.next(PlaybackFinished)
            await ari.stop_recording(recording)
            finished, _ = await call.next(RecordingFinished)
            assert finished.recording.name == recording

            stored = await ari.get_stored_recording(recording)
            assert stored.format == "wav"
            copy = await ari.copy_stored_recording(recording, recording + "-copy")
            assert len(await ari.stored_recording_file(copy.name)) > 44  # more than a WAV header
            await ari.delete_stored_recording(copy.name)
            await ari.delete_stored_recording(recording)

            await ari.hangup(channel_id, reason="normal")
            destroyed, _ = await call.next(ChannelDestroyed)
            assert destroyed.channel.id == channel_id
            assert destroyed.cause == 16
            await ari.destroy_bridge(bridge_id)


@pytest.mark.timeout(60)
async def test_snoop_remove_from_bridge_and_continue_in_dialplan(asterisk: Any) -> None:
    app = unique("it-app")
    call = CallEvents()
    lead, snoop, bridge_id = unique("lead"), unique("snoop"), unique("bridge")
    async with AriClient(config_for(asterisk, app=app)) as ari, Dispatcher(ignore) as dispatcher:
        stream = EventStream(ari, dispatcher)
        async with running(stream):
            async with asyncio.timeout(15):
                await stream.wait_connected()
            route = dispatcher.register("call-1", call, channel_ids=[lead], bridge_ids=[bridge_id])
            await ari.create_channel(lead, f"Local/{PERSON_TALKS_30S}@pstn-sim")
            await call.next(StasisStart)
            await ari.dial(lead, ring_timeout=10)
            while (await call.next(ChannelStateChange))[0].channel.state != "Up":
                pass

            # A supervisor's listen leg: spy on both directions, say nothing.
            route.add_channel(snoop)
            snooped = await ari.snoop(lead, snoop, spy="both", whisper="none")
            assert snooped is not None and snooped.id == snoop
            snoop_start, _ = await call.next(StasisStart)
            assert snoop_start.channel.id == snoop

            await ari.create_bridge(bridge_id)
            await ari.add_channel(bridge_id, [lead, snoop])
            await ari.remove_channel(bridge_id, snoop)
            left, _ = await call.next(ChannelLeftBridge, snoop)
            assert left.bridge.id == bridge_id
            await ari.hangup(snoop)

            # Leave Stasis for the dialplan: pstn-sim hangs up unknown numbers with cause 1.
            await ari.continue_in_dialplan(lead, context="pstn-sim", extension="999", priority=1)
            await call.next(StasisEnd, lead)
            destroyed, _ = await call.next(ChannelDestroyed, lead)
            assert destroyed.cause == 1, destroyed.cause_txt
            await ari.destroy_bridge(bridge_id)

            endpoints = await ari.list_endpoints()
            assert any(endpoint.technology == "PJSIP" for endpoint in endpoints)
            assert (await ari.get_application(app)).name == app


@pytest.mark.timeout(60)
async def test_cut_socket_reconnects_with_a_new_generation_and_snapshot(asterisk: Any) -> None:
    app = unique("it-app")
    ari_port = urlsplit(asterisk.ari_url).port
    assert ari_port is not None
    snapshots = Snapshots()
    call = CallEvents()
    channel_id = unique("lead")
    async with FaultProxy("127.0.0.1", ari_port) as proxy, Dispatcher(ignore) as dispatcher:
        url = asterisk.ari_url.replace(f":{ari_port}/", f":{proxy.port}/")
        async with AriClient(config_for(asterisk, app=app, url=url)) as ari:
            stream = EventStream(ari, dispatcher, on_connected=snapshots)
            async with running(stream):
                async with asyncio.timeout(15):
                    first = await stream.wait_connected()
                dispatcher.register("call-1", call, channel_ids=[channel_id])
                await ari.originate(channel_id, f"Local/{PERSON_TALKS_30S}@pstn-sim", ring_timeout=10)
                await call.next(StasisStart)

                proxy.cut_all()  # the event socket and every pooled connection die at once
                async with asyncio.timeout(30):
                    second = await stream.wait_connected(after_generation=first)
                assert second == first + 1
                with pytest.raises(StaleGenerationError):
                    stream.check(first)
                stream.check(second)
                assert [generation for generation, _ in snapshots.seen] == [first, second]
                # The fresh snapshot shows the call that lived through the outage ...
                assert channel_id in {channel.id for channel in snapshots.seen[-1][1].channels}
                # ... and its events reach the call again, under the new generation.
                await ari.hangup(channel_id)
                destroyed, generation = await call.next(ChannelDestroyed)
                assert destroyed.channel.id == channel_id and generation == second


@pytest.mark.timeout(60)
async def test_application_replaced_stops_the_stream_without_fighting(asterisk: Any) -> None:
    app = unique("it-app")
    async with (
        AriClient(config_for(asterisk, app=app)) as ari,
        Dispatcher(ignore) as first_sink,
        Dispatcher(ignore) as second_sink,
    ):
        first, second = EventStream(ari, first_sink), EventStream(ari, second_sink)
        async with running(first) as first_task:
            async with asyncio.timeout(15):
                await first.wait_connected()
            async with running(second):
                async with asyncio.timeout(15):
                    await second.wait_connected()
                with pytest.raises(ApplicationReplacedError):
                    async with asyncio.timeout(15):
                        await first_task
                assert second.connected
                assert (await ari.get_application(app)).name == app


@pytest.mark.timeout(240)
async def test_asterisk_restart_bumps_the_generation_and_rereads_the_snapshot(asterisk: Any) -> None:
    app = unique("it-app")
    snapshots = Snapshots()
    async with AriClient(config_for(asterisk, app=app)) as ari, Dispatcher(ignore) as dispatcher:
        stream = EventStream(ari, dispatcher, on_connected=snapshots)
        async with running(stream):
            async with asyncio.timeout(15):
                first = await stream.wait_connected()
            await asyncio.to_thread(asterisk.restart)
            async with asyncio.timeout(120):
                second = await stream.wait_connected(after_generation=first)
            assert second > first
            assert snapshots.seen[-1][0] == second
            assert snapshots.seen[-1][1].application.name == app
            info = await ari.asterisk_info()  # pooled connections to the old process were dropped
            assert info.status is not None


@pytest.mark.timeout(60)
async def test_originate_whose_response_is_lost_is_retried_and_returns_the_channel(asterisk: Any) -> None:
    # Kept last in this file: in Asterisk 22.10.1 a 409 for a duplicate channel id leaves
    # something behind that makes the next `core stop now` take about 16 s (seen with
    # /channels/create and /channels/{id} alike; 0 channels remain).
    app = unique("it-app")
    ari_port = urlsplit(asterisk.ari_url).port
    assert ari_port is not None
    call = CallEvents()
    channel_id = unique("lead")
    async with (
        AriClient(config_for(asterisk, app=app)) as ari,
        FaultProxy("127.0.0.1", ari_port) as proxy,
        Dispatcher(ignore) as dispatcher,
    ):
        faulty_url = asterisk.ari_url.replace(f":{ari_port}/", f":{proxy.port}/")
        stream = EventStream(ari, dispatcher)
        async with running(stream), AriClient(config_for(asterisk, app=app, url=faulty_url)) as faulty:
            async with asyncio.timeout(15):
                await stream.wait_connected()
            dispatcher.register("call-1", call, channel_ids=[channel_id])
            proxy.lose_next_responses = 1
            channel = await faulty.originate(channel_id, f"Local/{PERSON_TALKS_30S}@pstn-sim", ring_timeout=10)
            # The first attempt created the channel; the retry got 409 and read it back.
            assert channel is not None and channel.id == channel_id
            assert proxy.connections >= 2
            await call.next(StasisStart)
            await ari.hangup(channel_id)
            await call.next(ChannelDestroyed)
