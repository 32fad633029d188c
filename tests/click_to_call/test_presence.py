"""The state history of click-to-call-only agents (`dialer.click_to_call.presence`), driven with
explicit `now`s: what their calls make of them, and when wrap-ups and idle spells end."""

from __future__ import annotations

import pytest

from dialer.campaign.agent import AgentState
from dialer.click_to_call.presence import ClickToCallPresence
from dialer.click_to_call.record import CallState

SETUP = (CallState.REQUESTED, CallState.AGENT_RINGING, CallState.AGENT_ANSWERED, CallState.GATE_RECHECK,
         CallState.LEAD_RINGING, CallState.LEAD_ANSWERED)


def _states(changes: list) -> list[tuple[str, float]]:  # type: ignore[type-arg]
    return [(change.state.value, change.since) for change in changes]


def _call(presence: ClickToCallPresence, call_id: str, start: float, *, talked: bool = True) -> list:  # type: ignore[type-arg]
    changes = []
    for offset, state in enumerate(SETUP):
        changes += presence.call_state("ann", call_id, state, "cmp-1", start + offset)
    if talked:
        changes += presence.call_state("ann", call_id, CallState.BRIDGED, "cmp-1", start + 10)
    changes += presence.call_state("ann", call_id, CallState.ENDING, "cmp-1", start + 70)
    changes += presence.call_state("ann", call_id, CallState.ENDED, "cmp-1", start + 71)
    return changes


def test_a_call_then_its_disposition() -> None:
    presence = ClickToCallPresence(wrap_up_seconds=30, idle_seconds=600)
    changes = _call(presence, "c2c-1", 1000.0)
    # Setting up is one state however many steps it takes; the end after a talk is wrap-up.
    assert _states(changes) == [("reserved", 1000.0), ("on_call", 1010.0), ("wrap_up", 1070.0)]
    assert changes[0].channel_id == "click-to-call:ann:c2c-1" and changes[0].campaign_ids == ("cmp-1",)
    assert [change.version for change in changes] == [1, 2, 3] and changes[2].wrap_up_until == 1100.0
    assert presence.disposed("ann", "other-call", 1080.0) == []
    ready = presence.disposed("ann", "c2c-1", 1085.0)
    assert _states(ready) == [("ready", 1085.0)] and ready[0].call_id is None
    assert presence.disposed("ann", "c2c-1", 1086.0) == []  # sent twice: one change
    assert presence.next_due() == 1685.0


def test_wrap_up_and_idle_end_on_time() -> None:
    presence = ClickToCallPresence(wrap_up_seconds=30, idle_seconds=600)
    _call(presence, "c2c-1", 1000.0)
    assert presence.due(1099.0) == []
    # Long after: the wrap-up ended at its deadline, the ready spell 600 s later, each at its own time.
    ended = presence.due(5000.0)
    assert _states(ended) == [("ready", 1100.0), ("logged_out", 1700.0)]
    assert ended[-1].logout_reason == "idle" and presence.state_of("ann") is None and presence.next_due() is None
    # The next call starts a new session.
    again = _call(presence, "c2c-2", 9000.0, talked=False)
    assert _states(again) == [("reserved", 9000.0), ("ready", 9070.0)]
    assert again[0].channel_id == "click-to-call:ann:c2c-2" and again[0].version == 1


def test_a_call_during_wrap_up_and_late_ends() -> None:
    presence = ClickToCallPresence(wrap_up_seconds=30, idle_seconds=600)
    _call(presence, "c2c-1", 1000.0)
    follow = presence.call_state("ann", "c2c-2", CallState.REQUESTED, None, 1080.0)
    assert _states(follow) == [("reserved", 1080.0)] and follow[0].channel_id == "click-to-call:ann:c2c-1"
    # A late snapshot of the earlier call, or of a call never seen, changes nothing.
    assert presence.call_state("ann", "c2c-1", CallState.ENDED, None, 1081.0) == []
    assert presence.call_state("bob", "c2c-9", CallState.ENDED, None, 1081.0) == []
    assert presence.state_of("ann") is not None and presence.state_of("ann").state is AgentState.RESERVED  # type: ignore[union-attr]


def test_a_drain_ends_every_session() -> None:
    presence = ClickToCallPresence(wrap_up_seconds=30, idle_seconds=600)
    _call(presence, "c2c-1", 1000.0)
    presence.call_state("bob", "c2c-2", CallState.REQUESTED, None, 1050.0)
    ended = presence.end_all(1200.0)
    # Ann's wrap-up ended on time first; then both sessions end at the drain.
    assert [(change.agent_id, change.state.value, change.since) for change in ended] == [
        ("ann", "ready", 1100.0), ("ann", "logged_out", 1200.0), ("bob", "logged_out", 1200.0)]
    assert ended[-1].logout_reason == "shutdown" and presence.next_due() is None


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        ClickToCallPresence(wrap_up_seconds=-1)
    with pytest.raises(ValueError):
        ClickToCallPresence(idle_seconds=0)
