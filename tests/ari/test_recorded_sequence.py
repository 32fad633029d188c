"""A call captured from the provisioned Asterisk 22.10.1 (fixtures/recorded_call.json).

Created with /channels/create into the app, dialed (Local/2125551003@pstn-sim: a person who
answers at once and talks 3 s), added to a bridge, the bridge recorded and played to, then the
far end hung up. Note what Asterisk really sends: the bridge's PlaybackFinished and
RecordingFinished come after the channel's ChannelDestroyed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dialer.ari.dispatch import Dispatcher
from dialer.ari.models import (
    ChannelDestroyed,
    Dial,
    Event,
    RecordingFinished,
    StasisStart,
    UnknownEvent,
    parse_event,
)

RECORDED: list[dict[str, Any]] = json.loads((Path(__file__).parent / "fixtures" / "recorded_call.json").read_text())


def test_every_recorded_event_is_a_known_type() -> None:
    events = [parse_event(raw) for raw in RECORDED]
    assert not [event for event in events if isinstance(event, UnknownEvent)]
    assert [event.type for event in events] == [raw["type"] for raw in RECORDED]


def test_recorded_outcome_fields() -> None:
    events = [parse_event(raw) for raw in RECORDED]
    start = next(event for event in events if isinstance(event, StasisStart))
    assert start.args == ("lead", "42") and start.channel.id == "lead-7f3a"
    statuses = [event.dialstatus for event in events if isinstance(event, Dial)]
    assert statuses == ["", "RINGING", "ANSWER"]
    destroyed = next(event for event in events if isinstance(event, ChannelDestroyed))
    assert (destroyed.cause, destroyed.cause_txt) == (16, "Normal Clearing")
    finished = next(event for event in events if isinstance(event, RecordingFinished))
    assert finished.recording.state == "done" and finished.recording.duration == 3


@pytest.mark.timeout(10)
async def test_the_whole_call_reaches_its_owner_in_order() -> None:
    seen: list[str] = []
    unrouted: list[str] = []

    class Call:
        async def handle_event(self, event: Event, generation: int) -> None:
            seen.append(event.type)

    async def default(event: Event, generation: int) -> None:
        unrouted.append(event.type)

    async with Dispatcher(default) as dispatcher:
        dispatcher.register("call-7f3a", Call(), channel_ids=["lead-7f3a"], bridge_ids=["bridge-7f3a"])
        for raw in RECORDED:
            dispatcher.deliver(parse_event(raw), 1)
    assert seen == [raw["type"] for raw in RECORDED]
    assert unrouted == []
