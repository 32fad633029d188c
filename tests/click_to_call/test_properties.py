"""Properties of the call machine over arbitrary input sequences (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.click_to_call.actions import (
    CallAction,
    CreateBridge,
    DestroyBridge,
    DialLead,
    Emit,
    Finished,
    HangupChannel,
    OriginateAgent,
    StartRecording,
    StopRecording,
)
from dialer.click_to_call.inputs import (
    AgentAnswered,
    AgentHungUp,
    AgentRinging,
    AsteriskLost,
    AsteriskReconciled,
    BridgeCreated,
    BridgeFailed,
    CallInput,
    GateDecided,
    HangupBy,
    HangupRequested,
    LeadAnswered,
    LeadHungUp,
    LeadJoined,
    LeadRinging,
    Leg,
    OriginateFailed,
    RecordingFailed,
    RecordingStarted,
    Start,
)
from dialer.click_to_call.machine import CallTimeouts
from dialer.click_to_call.record import CallState
from dialer.runtime.errors import InvalidStateError
from tests.click_to_call.helpers import CALL_ID, RECORDING, T0, new_machine

AGENT = f"{CALL_ID}-agent"
LEAD = f"{CALL_ID}-lead"


class Tick:
    """Not an input: call `handle_timer` (at the next deadline or at `now`)."""


causes = st.one_of(st.none(), st.sampled_from([0, 1, 3, 16, 17, 18, 19, 21, 22, 28, 34, 38, 41, 42, 127]))
inputs: st.SearchStrategy[CallInput | Tick] = st.one_of(
    st.just(Start()),
    st.just(AgentRinging()),
    st.just(AgentAnswered()),
    st.builds(AgentHungUp, causes),
    st.just(BridgeCreated()),
    st.just(BridgeFailed("x")),
    st.builds(RecordingStarted, st.sampled_from([RECORDING, "other"])),
    st.just(RecordingFailed("x")),
    st.builds(GateDecided, st.booleans(), st.just("d")),
    st.just(LeadRinging()),
    st.just(LeadAnswered()),
    st.builds(LeadHungUp, causes),
    st.just(LeadJoined()),
    st.builds(HangupRequested, st.sampled_from(list(HangupBy))),
    st.just(AsteriskLost()),
    st.builds(AsteriskReconciled, st.frozensets(st.sampled_from([AGENT, LEAD, "x"])).map(frozenset)),
    st.builds(OriginateFailed, st.sampled_from(list(Leg))),
    st.just(Tick()),
)
steps = st.lists(
    st.tuples(inputs, st.floats(min_value=0, max_value=40, allow_nan=False), st.booleans()),
    max_size=40,
)
# Most sequences should start the call, else they test little.
sequences = st.tuples(st.booleans(), steps).map(
    lambda pair: [(Start(), 0.0, False), *pair[1]] if pair[0] else pair[1]
)


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=None)
@given(sequence=sequences, lead_ring=st.floats(min_value=0.1, max_value=60))
def test_any_input_sequence_keeps_the_invariants(
    sequence: list[tuple[CallInput | Tick, float, bool]], lead_ring: float
) -> None:
    machine = new_machine(CallTimeouts(lead_ring=lead_ring))
    now = T0
    finishes = 0
    after_finish: list[CallAction] = []
    versions: list[int] = []
    emitted: list[CallAction] = []
    recording_confirmed = False
    last_gate_allowed: bool | None = None
    legs_gone: set[str] = set()

    for event, dt, jump_to_timer in sequence:
        now += dt
        if isinstance(event, Tick):
            deadline = machine.next_timer()
            if jump_to_timer and deadline is not None:
                now = max(now, deadline)
            actions = machine.handle_timer(now)
        else:
            state_before = machine.state
            try:
                actions = machine.handle(event, now)
            except InvalidStateError as error:
                assert isinstance(event, Start) and state_before is not CallState.REQUESTED
                assert error.state is state_before
                continue
        if finishes:
            after_finish += actions
            continue

        # What the machine could know when it acted on this input.
        if (
            isinstance(event, RecordingStarted)
            and event.name == RECORDING
            and any(isinstance(a, StartRecording) for a in emitted)
        ):
            recording_confirmed = True
        if isinstance(event, RecordingFailed):
            recording_confirmed = False
        if isinstance(event, GateDecided):
            last_gate_allowed = event.allowed
        for action in actions:
            if isinstance(action, DialLead):
                assert recording_confirmed, "lead dialed without a confirmed recording"
                assert last_gate_allowed is True, "lead dialed without the gate allowing it"
                assert isinstance(event, GateDecided) and event.allowed
                assert action.timeout >= 15.0
            if isinstance(action, Emit):
                versions.append(action.record.version)
        if isinstance(event, AgentHungUp | AsteriskReconciled | OriginateFailed | LeadHungUp):
            if isinstance(event, AgentHungUp) or (
                isinstance(event, OriginateFailed) and event.leg is Leg.AGENT
            ):
                legs_gone.add(AGENT)
            if isinstance(event, LeadHungUp) or (
                isinstance(event, OriginateFailed) and event.leg is Leg.LEAD
            ):
                legs_gone.add(LEAD)
            if isinstance(event, AsteriskReconciled):
                legs_gone |= {AGENT, LEAD} - event.live_channel_ids
        emitted += actions
        finishes += sum(isinstance(a, Finished) for a in actions)
        if finishes:
            assert isinstance(actions[-1], Finished), "Finished is the last action"

    assert finishes <= 1
    assert after_finish == [], "actions after Finished"
    assert versions == sorted(set(versions)), "snapshot versions must strictly increase"
    assert (machine.state is CallState.ENDED) == (finishes == 1)
    if finishes:
        assert machine.next_timer() is None
        # Teardown: every leg originated is hung up or known gone; recording stopped; bridge destroyed.
        hung_up = {a.channel_id for a in emitted if isinstance(a, HangupChannel)}
        if any(isinstance(a, OriginateAgent) for a in emitted):
            assert AGENT in hung_up or AGENT in legs_gone
        if any(isinstance(a, DialLead) for a in emitted):
            assert LEAD in hung_up or LEAD in legs_gone
        if any(isinstance(a, CreateBridge) for a in emitted):
            assert any(isinstance(a, DestroyBridge) for a in emitted)
        if any(isinstance(a, StartRecording) for a in emitted) and not any(
            isinstance(e, RecordingFailed) for e, _, _ in sequence
        ):
            assert any(isinstance(a, StopRecording) for a in emitted)
    else:
        # A live call always has a timer, so it cannot hang forever.
        assert machine.state is CallState.REQUESTED or machine.next_timer() is not None
