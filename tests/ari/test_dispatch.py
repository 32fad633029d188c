"""The dispatcher: per-call ordering, calls in parallel, default handler, failures, shutdown."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from dialer.ari.dispatch import Dispatcher, routing_keys
from dialer.ari.models import ChannelDestroyed, Event, StasisStart, parse_event

FIXTURES = Path(__file__).parent / "fixtures"
SEQUENCE: list[dict[str, Any]] = json.loads((FIXTURES / "call_sequence.json").read_text())


def raw_of(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(next(raw for raw in SEQUENCE if raw["type"] == event_type))


def dtmf(channel_id: str, digit: str) -> Event:
    raw = raw_of("ChannelDtmfReceived")
    raw["channel"]["id"] = channel_id
    raw["digit"] = digit
    return parse_event(raw)


class Recorder:
    """A call that records what it handled; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.seen: list[str] = []
        self.delay = delay
        self.fail_on = fail_on

    async def handle_event(self, event: Event, generation: int) -> None:
        label = getattr(event, "digit", event.type)
        if self.delay:
            await asyncio.sleep(self.delay)
        if label == self.fail_on:
            raise RuntimeError(f"bug handling {label}")
        self.seen.append(f"{label}@{generation}")


async def no_default(event: Event, generation: int) -> None:
    raise AssertionError(f"unexpected unrouted {event.type}")


def test_routing_keys_cover_channels_bridges_and_targets() -> None:
    keys = {raw["type"]: routing_keys(parse_event(raw)) for raw in SEQUENCE}
    assert keys["Dial"] == ("channel:call-42-lead",)
    assert keys["ChannelEnteredBridge"] == ("bridge:bridge-42", "channel:call-42-lead")
    assert keys["PlaybackStarted"] == ("bridge:bridge-42",)
    assert keys["RecordingStarted"] == ("bridge:bridge-42",)
    assert keys["ApplicationReplaced"] == ()
    assert keys["ChannelTalkingFinishedWithJazz"] == ()  # UnknownEvent


@pytest.mark.timeout(10)
async def test_events_of_one_call_are_handled_strictly_in_order() -> None:
    call = Recorder(delay=0.001)
    async with Dispatcher(no_default) as dispatcher:
        dispatcher.register("call-1", call, channel_ids=["lead-1"])
        for digit in "0123456789" * 5:
            dispatcher.deliver(dtmf("lead-1", digit), 1)
        dispatcher.unregister("call-1")  # drains what is queued
    assert call.seen == [f"{d}@1" for d in "0123456789" * 5]


class Blocked:
    """A call whose handler waits until the test releases it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.seen: list[str] = []

    async def handle_event(self, event: Event, generation: int) -> None:
        self.entered.set()
        await self.release.wait()
        self.seen.append(event.type)


@pytest.mark.timeout(10)
async def test_a_slow_call_does_not_hold_up_another() -> None:
    slow, fast = Blocked(), Recorder()
    async with Dispatcher(no_default) as dispatcher:
        dispatcher.register("slow", slow, channel_ids=["a"])
        fast_route = dispatcher.register("fast", fast, channel_ids=["b"])
        dispatcher.deliver(dtmf("a", "1"), 1)
        for digit in "123":
            dispatcher.deliver(dtmf("b", digit), 1)
        dispatcher.unregister("fast")
        await slow.entered.wait()
        await fast_route.wait_closed()  # finishes while the slow call is still blocked
        assert fast.seen == ["1@1", "2@1", "3@1"]
        assert slow.seen == []
        slow.release.set()
    assert slow.seen == ["ChannelDtmfReceived"]  # drained at shutdown


@pytest.mark.timeout(10)
async def test_two_calls_run_in_parallel() -> None:
    # Each handler waits at a barrier for the other: handled one after the other, they would
    # never both arrive and the test would time out.
    barrier = asyncio.Barrier(2)
    seen: list[str] = []

    class MeetsTheOther:
        def __init__(self, name: str) -> None:
            self.name = name

        async def handle_event(self, event: Event, generation: int) -> None:
            async with asyncio.timeout(5):
                await barrier.wait()
            seen.append(self.name)

    async with Dispatcher(no_default) as dispatcher:
        for i in range(2):
            dispatcher.register(f"call-{i}", MeetsTheOther(f"call-{i}"), channel_ids=[f"ch-{i}"])
            dispatcher.deliver(dtmf(f"ch-{i}", "5"), 1)
    assert sorted(seen) == ["call-0", "call-1"]


@pytest.mark.timeout(10)
async def test_unrouted_events_go_to_the_default_handler_in_order() -> None:
    seen: list[str] = []

    async def default(event: Event, generation: int) -> None:
        seen.append(event.type)

    async with Dispatcher(default) as dispatcher:
        for raw in SEQUENCE:
            dispatcher.deliver(parse_event(raw), 3)
    assert seen == [raw["type"] for raw in SEQUENCE]


@pytest.mark.timeout(10)
async def test_an_event_naming_two_owners_reaches_both() -> None:
    call, agent = Recorder(), Recorder()
    entered = parse_event(raw_of("ChannelEnteredBridge"))  # channel call-42-lead, bridge bridge-42
    async with Dispatcher(no_default) as dispatcher:
        dispatcher.register("call-42", call, bridge_ids=["bridge-42"])
        route = dispatcher.register("agent-1001", agent)
        route.add_channel("call-42-lead")
        dispatcher.deliver(entered, 1)
    assert call.seen == agent.seen == ["ChannelEnteredBridge@1"]


@pytest.mark.timeout(10)
async def test_a_failing_consumer_is_logged_with_its_call_id_and_keeps_serving() -> None:
    call = Recorder(fail_on="2")
    with capture_logs() as logs:
        async with Dispatcher(no_default) as dispatcher:
            route = dispatcher.register("call-9", call, channel_ids=["x"])
            for digit in "123":
                dispatcher.deliver(dtmf("x", digit), 1)
    assert call.seen == ["1@1", "3@1"]
    assert route.failures == 1 and route.handled == 2
    failures = [entry for entry in logs if entry["event"] == "ari.dispatch.consumer_failed"]
    assert len(failures) == 1
    assert failures[0]["call_id"] == "call-9"
    assert failures[0]["event_type"] == "ChannelDtmfReceived"
    assert failures[0]["log_level"] == "error"
    assert failures[0]["exc_info"] is True


@pytest.mark.timeout(10)
async def test_a_call_can_unregister_itself_from_its_handler() -> None:
    class HangsUpOnDestroy:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def handle_event(self, event: Event, generation: int) -> None:
            self.seen.append(event.type)
            if isinstance(event, ChannelDestroyed):
                dispatcher.unregister("call-42")

    call = HangsUpOnDestroy()
    unrouted: list[str] = []

    async def default(event: Event, generation: int) -> None:
        unrouted.append(event.type)

    async with Dispatcher(default) as dispatcher:
        route = dispatcher.register("call-42", call, channel_ids=["call-42-lead"])
        dispatcher.deliver(parse_event(raw_of("StasisEnd")), 1)
        dispatcher.deliver(parse_event(raw_of("ChannelDestroyed")), 1)
        await route.wait_closed()
        dispatcher.deliver(parse_event(raw_of("ChannelDestroyed")), 1)  # late duplicate: nobody owns it
    assert call.seen == ["StasisEnd", "ChannelDestroyed"]
    assert unrouted == ["ChannelDestroyed"]
    assert dispatcher.call_ids == ()


@pytest.mark.timeout(10)
async def test_shutdown_without_drain_cancels_queued_work() -> None:
    call = Recorder(delay=5.0)
    dispatcher = Dispatcher(no_default)
    async with dispatcher:
        dispatcher.register("stuck", call, channel_ids=["s"])
        dispatcher.deliver(dtmf("s", "1"), 1)
        dispatcher.deliver(dtmf("s", "2"), 1)
        await asyncio.sleep(0.01)
        await dispatcher.shutdown(drain=False)
    assert call.seen == []
    dispatcher.deliver(dtmf("s", "3"), 1)
    assert dispatcher.dropped == 1


@pytest.mark.timeout(10)
async def test_drain_has_a_deadline_then_cancels() -> None:
    call = Recorder(delay=5.0)
    with capture_logs() as logs:
        async with Dispatcher(no_default, drain_seconds=0.1) as dispatcher:
            dispatcher.register("stuck", call, channel_ids=["s"])
            dispatcher.deliver(dtmf("s", "1"), 1)
    assert call.seen == []
    assert any(entry["event"] == "ari.dispatch.cancelled_at_shutdown" for entry in logs)


@pytest.mark.timeout(10)
async def test_registration_mistakes_are_refused() -> None:
    async with Dispatcher(no_default) as dispatcher:
        dispatcher.register("call-1", Recorder())
        with pytest.raises(ValueError, match="already registered"):
            dispatcher.register("call-1", Recorder())
    with pytest.raises(RuntimeError, match="not accepting"):
        dispatcher.register("call-2", Recorder())


def test_stasis_start_is_an_event() -> None:
    assert isinstance(parse_event(raw_of("StasisStart")), StasisStart)
