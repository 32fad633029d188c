"""Parsing ARI JSON into the generated models, from recorded event fixtures."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dialer.ari.models import (
    EVENT_TYPES,
    ApplicationReplaced,
    Channel,
    ChannelDestroyed,
    ChannelEnteredBridge,
    Dial,
    PlaybackStarted,
    StasisStart,
    TextMessage,
    UnknownEvent,
    parse_event,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_every_event_of_a_call_sequence_parses_to_its_class() -> None:
    events = [parse_event(raw) for raw in load("call_sequence.json")]
    assert [event.type for event in events] == [raw["type"] for raw in load("call_sequence.json")]
    for event in events[:-1]:
        assert type(event) is EVENT_TYPES[event.type]


def test_stasis_start_fields_are_typed() -> None:
    raw = next(raw for raw in load("call_sequence.json") if raw["type"] == "StasisStart")
    event = parse_event(raw)
    assert isinstance(event, StasisStart)
    assert event.args == ("amd", "HUMAN", "HUMAN-500-500")
    assert event.channel.id == "call-42-lead"
    assert event.channel.caller.number == "5551230000"
    assert event.channel.dialplan.priority == 4
    assert event.channel.creationtime == datetime(2025, 3, 1, 19, 2, 3, 411000, tzinfo=UTC)
    assert event.application == "dialer"
    assert event.replace_channel is None


def test_optional_fields_absent_are_none_and_present_are_read() -> None:
    raws = load("call_sequence.json")
    destroyed = parse_event(next(raw for raw in raws if raw["type"] == "ChannelDestroyed"))
    assert isinstance(destroyed, ChannelDestroyed)
    assert (destroyed.cause, destroyed.cause_txt, destroyed.tech_cause) == (16, "Normal Clearing", 200)
    dial = parse_event(raws[0])
    assert isinstance(dial, Dial)
    assert dial.caller is None and dial.forward is None
    entered = parse_event(next(raw for raw in raws if raw["type"] == "ChannelEnteredBridge"))
    assert isinstance(entered, ChannelEnteredBridge)
    assert entered.bridge.channels == ("call-42-lead", "agent-1001")
    playback = parse_event(next(raw for raw in raws if raw["type"] == "PlaybackStarted"))
    assert isinstance(playback, PlaybackStarted)
    assert playback.playback.target_uri == "bridge:bridge-42"


def test_unknown_event_type_keeps_its_raw_json() -> None:
    raw = load("call_sequence.json")[-1]
    event = parse_event(raw)
    assert isinstance(event, UnknownEvent)
    assert event.type == "ChannelTalkingFinishedWithJazz"
    assert event.raw["channel"]["id"] == "call-42-lead"  # type: ignore[index]


def test_events_without_fields_of_their_own_parse() -> None:
    event = parse_event({"type": "ApplicationReplaced", "application": "dialer", "timestamp": "2025-03-01T14:02:05.120+0000"})
    assert isinstance(event, ApplicationReplaced)
    assert event.asterisk_id is None


def test_unknown_extra_fields_are_ignored() -> None:
    channel = Channel.from_json(load("channel_up.json"))
    assert channel.id == "call-42-lead"
    assert channel.channelvars is None


def test_missing_required_field_names_the_event_and_path() -> None:
    raw = copy.deepcopy(next(raw for raw in load("call_sequence.json") if raw["type"] == "StasisStart"))
    del raw["channel"]["caller"]["number"]
    with pytest.raises(ValueError, match=r"^StasisStart\.channel\.caller: missing required field 'number'$"):
        parse_event(raw)


def test_null_required_field_counts_as_missing() -> None:
    raw = copy.deepcopy(next(raw for raw in load("call_sequence.json") if raw["type"] == "ChannelDestroyed"))
    raw["cause"] = None
    with pytest.raises(ValueError, match=r"^ChannelDestroyed: missing required field 'cause'$"):
        parse_event(raw)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("cause",), "16", r"ChannelDestroyed\.cause: expected an integer, got str '16'"),
        (("cause",), True, r"ChannelDestroyed\.cause: expected an integer, got bool True"),
        (("channel", "creationtime"), "yesterday", r"ChannelDestroyed\.channel\.creationtime: expected an ISO 8601 date"),
        (("channel",), "call-42", r"ChannelDestroyed\.channel: expected an object, got str"),
    ],
)
def test_mistyped_field_names_the_field(path: tuple[str, ...], value: object, message: str) -> None:
    raw = copy.deepcopy(next(raw for raw in load("call_sequence.json") if raw["type"] == "ChannelDestroyed"))
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        parse_event(raw)


def test_list_items_are_checked_with_their_index() -> None:
    raw = copy.deepcopy(next(raw for raw in load("call_sequence.json") if raw["type"] == "StasisStart"))
    raw["args"] = ["amd", 7]
    with pytest.raises(ValueError, match=r"StasisStart\.args\[1\]: expected a string, got int 7"):
        parse_event(raw)


def test_message_without_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="missing required field 'type'"):
        parse_event({"application": "dialer"})


def test_python_keyword_field_gets_a_trailing_underscore() -> None:
    message = TextMessage.from_json({"from": "pjsip:agent1001", "to": "pjsip:dialer", "body": "STOP"})
    assert message.from_ == "pjsip:agent1001"


def test_models_are_frozen() -> None:
    channel = Channel.from_json(load("channel_up.json"))
    with pytest.raises(AttributeError):
        channel.id = "other"  # type: ignore[misc]
