"""The click-to-call call machine, driven with explicit `now`s (no IO, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_bridge.records import validate
from dialer.click_to_call.actions import (
    AddToBridge,
    CheckGate,
    CreateBridge,
    DestroyBridge,
    DialLead,
    Emit,
    Finished,
    HangupChannel,
    OriginateAgent,
    ScreenPop,
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
from dialer.click_to_call.machine import CallMachine, CallRequest, CallTimeouts
from dialer.click_to_call.record import CallState, ClickToCallOutcome, lead_outcome_for_cause
from dialer.runtime.errors import InvalidStateError
from tests.click_to_call.helpers import (
    CALL_ID,
    GATE_ID,
    HAPPY_PATH,
    LIVE_STATES,
    RECHECK_ID,
    RECORDING,
    REQUEST,
    T0,
    finished,
    io_actions,
    last_record,
    machine_in,
    new_machine,
)

pytestmark = pytest.mark.timeout(10)

AGENT = f"{CALL_ID}-agent"
LEAD = f"{CALL_ID}-lead"
BRIDGE = f"{CALL_ID}-bridge"


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0, tz=UTC) + timedelta(seconds=offset)


# -- happy path -------------------------------------------------------------------------------


def test_happy_path_actions_in_order() -> None:
    _, actions = machine_in(CallState.BRIDGED)
    assert io_actions(actions) == [
        ScreenPop(CALL_ID, "agent-1001", "lead-9", "camp-3", "+15555550123"),
        OriginateAgent(AGENT, "PJSIP/agent1001", 30.0),
        CreateBridge(BRIDGE),
        AddToBridge(BRIDGE, AGENT),
        StartRecording(BRIDGE, RECORDING),
        CheckGate(CALL_ID, "lead-9", "+15555550123", "camp-3"),
        DialLead(LEAD, "PJSIP/+15555550123@trunk", "+15555550100", 25.0),
        AddToBridge(BRIDGE, LEAD),
    ]
    states = [a.record.state for a in actions if isinstance(a, Emit)]
    assert states == [
        CallState.AGENT_RINGING,
        CallState.AGENT_ANSWERED,
        CallState.GATE_RECHECK,
        CallState.LEAD_RINGING,
        CallState.LEAD_ANSWERED,
        CallState.BRIDGED,
    ]


def test_happy_path_recording_and_gate_come_before_the_lead_dial() -> None:
    _, actions = machine_in(CallState.BRIDGED)
    kinds = [type(a) for a in io_actions(actions)]
    assert (
        kinds.index(CreateBridge)
        < kinds.index(StartRecording)
        < kinds.index(CheckGate)
        < kinds.index(DialLead)
    )
    # The gate is only asked once the recording is confirmed: not in the same step as StartRecording.
    machine, _ = machine_in(CallState.AGENT_ANSWERED)
    step = machine.handle(BridgeCreated(), T0 + 4.1)
    assert not any(isinstance(a, CheckGate | DialLead) for a in step)
    assert machine.state is CallState.AGENT_ANSWERED


def test_screen_pop_is_the_first_action_long_before_the_lead_answers() -> None:
    machine = new_machine()
    actions = machine.handle(Start(), T0)
    assert isinstance(actions[0], ScreenPop)
    assert machine.state is CallState.AGENT_RINGING


def test_happy_path_record_timestamps_and_durations() -> None:
    machine, _ = machine_in(CallState.BRIDGED)
    actions = machine.handle(LeadHungUp(cause=16, sip_code=200, cause_text="Normal Clearing"), T0 + 72.2)
    assert io_actions(actions) == [
        HangupChannel(AGENT, "normal"),
        StopRecording(RECORDING),
        DestroyBridge(BRIDGE),
    ]
    assert machine.state is CallState.ENDING
    assert finished(actions) == []
    actions = machine.handle(AgentHungUp(cause=16), T0 + 72.4)
    assert finished(actions) == [Finished(ClickToCallOutcome.COMPLETED)]
    record = last_record(actions).record
    assert record.state is CallState.ENDED
    assert record.outcome is ClickToCallOutcome.COMPLETED
    assert record.ended_by == "lead"
    assert record.requested_at == at(0)
    assert record.agent_ringing_at == at(1.0)
    assert record.agent_answered_at == at(4.0)
    assert record.recording_started_at == at(4.3)
    assert record.lead_dialed_at == at(4.4)
    assert record.lead_ringing_at == at(5.0)
    assert record.lead_answered_at == at(12.0)
    assert record.bridged_at == at(12.2)
    assert record.ended_at == at(72.2)
    assert record.ring_seconds == pytest.approx(7.6)
    assert record.talk_seconds == pytest.approx(60.0)
    assert record.total_seconds == pytest.approx(72.2)
    assert record.recording_name == RECORDING
    assert record.gate_decision_id == GATE_ID
    assert record.recheck_decision_id == RECHECK_ID
    assert record.caller_id == "+15555550100"
    assert (record.lead_hangup_cause, record.lead_sip_code, record.lead_hangup_cause_text) == (
        16,
        200,
        "Normal Clearing",
    )
    assert record.lead_ring_timeout == 25.0
    assert not record.abandoned
    assert machine.next_timer() is None


def test_every_snapshot_has_a_higher_version() -> None:
    machine, actions = machine_in(CallState.BRIDGED)
    actions += machine.handle(HangupRequested(HangupBy.AGENT), T0 + 30)
    actions += machine.handle(AgentHungUp(16), T0 + 30.1)
    actions += machine.handle(LeadHungUp(16), T0 + 30.2)
    versions = [a.record.version for a in actions if isinstance(a, Emit)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions) == 8
    assert machine.record.version == versions[-1]


def test_crm_call_record_validates_for_the_crm_bridge() -> None:
    machine, _ = machine_in(CallState.BRIDGED)
    machine.handle(LeadHungUp(16, 200), T0 + 40)
    actions = machine.handle(AgentHungUp(16), T0 + 40.5)
    row = validate("call", last_record(actions).record.to_crm_call())
    assert row["outcome"] == "answered"
    assert row["talk_seconds"] == pytest.approx(27.8)
    assert row["compliance_decision_id"] == RECHECK_ID
    assert row["recording_id"] == RECORDING
    # An in-progress snapshot validates too.
    validate("call", new_machine().record.to_crm_call())


# -- ring timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "used"), [(1.0, 15.0), (14.99, 15.0), (15.0, 15.0), (40.0, 40.0)])
def test_lead_ring_timeout_is_never_below_15_seconds(configured: float, used: float) -> None:
    _, actions = machine_in(CallState.LEAD_RINGING, CallTimeouts(lead_ring=configured))
    dials = [a for a in actions if isinstance(a, DialLead)]
    assert [d.timeout for d in dials] == [used]


def test_lead_backstop_fires_after_the_asterisk_timeout_and_hangs_up_the_lead() -> None:
    machine, _ = machine_in(CallState.LEAD_RINGING, CallTimeouts(lead_ring=20, backstop_slack=5))
    assert machine.next_timer() == pytest.approx(T0 + 4.4 + 25)
    assert machine.handle_timer(T0 + 29.3) == []
    actions = machine.handle_timer(T0 + 29.4)
    assert io_actions(actions)[:2] == [HangupChannel(LEAD, "no_answer"), HangupChannel(AGENT, "normal")]
    assert machine.outcome is ClickToCallOutcome.LEAD_NO_ANSWER
    assert machine.record.ring_seconds == pytest.approx(25.0)


def test_agent_backstop_timer_ends_with_agent_no_answer() -> None:
    machine, _ = machine_in(CallState.AGENT_RINGING)
    assert machine.next_timer() == pytest.approx(T0 + 0.5 + 35)
    actions = machine.handle_timer(T0 + 36)
    assert io_actions(actions) == [HangupChannel(AGENT, "normal")]
    assert machine.outcome is ClickToCallOutcome.AGENT_NO_ANSWER
    actions = machine.handle(AgentHungUp(19), T0 + 36.1)
    assert finished(actions) == [Finished(ClickToCallOutcome.AGENT_NO_ANSWER)]


# -- agent leg failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        (19, ClickToCallOutcome.AGENT_NO_ANSWER),
        (18, ClickToCallOutcome.AGENT_NO_ANSWER),
        (16, ClickToCallOutcome.AGENT_NO_ANSWER),
        (None, ClickToCallOutcome.AGENT_NO_ANSWER),
        (17, ClickToCallOutcome.AGENT_BUSY),
        (21, ClickToCallOutcome.AGENT_BUSY),
    ],
)
def test_agent_never_answers(cause: int | None, outcome: ClickToCallOutcome) -> None:
    machine, _ = machine_in(CallState.AGENT_RINGING)
    actions = machine.handle(AgentHungUp(cause, 486 if cause == 17 else None), T0 + 20)
    assert io_actions(actions) == [Finished(outcome)]
    record = machine.record
    assert record.state is CallState.ENDED
    assert record.agent_hangup_cause == cause
    assert record.lead_dialed_at is None and record.ring_seconds is None
    assert record.total_seconds == pytest.approx(20.0)
    assert record.talk_seconds == 0.0


def test_agent_originate_refused() -> None:
    machine, _ = machine_in(CallState.AGENT_RINGING)
    actions = machine.handle(OriginateFailed(Leg.AGENT, "endpoint not found"), T0 + 0.6)
    assert io_actions(actions) == [Finished(ClickToCallOutcome.ORIGINATE_FAILED)]
    assert machine.record.detail == "agent leg: endpoint not found"
    assert machine.record.problem is None
    assert machine.record.to_crm_call()["hangup_cause_text"] is None


def test_an_explained_agent_refusal_names_its_problem_for_the_crm() -> None:
    machine, _ = machine_in(CallState.AGENT_RINGING)
    machine.handle(OriginateFailed(Leg.AGENT, "no softphone is registered on PJSIP/agent1001",
                                   problem="softphone_not_registered"), T0 + 0.6)
    record = machine.record
    assert (record.outcome, record.problem) == (ClickToCallOutcome.ORIGINATE_FAILED, "softphone_not_registered")
    assert record.to_crm_call()["hangup_cause_text"] == "softphone_not_registered"
    assert record.to_crm_call()["hangup_cause"] is None


def test_lead_dial_refused_hangs_up_the_agent() -> None:
    machine, _ = machine_in(CallState.LEAD_RINGING)
    actions = machine.handle(OriginateFailed(Leg.LEAD, "trunk down"), T0 + 4.5)
    assert io_actions(actions) == [
        HangupChannel(AGENT, "normal"),
        StopRecording(RECORDING),
        DestroyBridge(BRIDGE),
    ]
    assert machine.outcome is ClickToCallOutcome.ORIGINATE_FAILED
    assert finished(machine.handle(AgentHungUp(16), T0 + 4.6)) == [Finished(ClickToCallOutcome.ORIGINATE_FAILED)]


# -- lead leg outcomes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "sip", "outcome"),
    [
        (17, 486, ClickToCallOutcome.LEAD_BUSY),
        (17, 600, ClickToCallOutcome.LEAD_BUSY),
        (19, 480, ClickToCallOutcome.LEAD_NO_ANSWER),
        (18, None, ClickToCallOutcome.LEAD_NO_ANSWER),
        (1, 404, ClickToCallOutcome.LEAD_UNALLOCATED),
        (3, None, ClickToCallOutcome.LEAD_UNALLOCATED),
        (22, None, ClickToCallOutcome.LEAD_UNALLOCATED),
        (28, 484, ClickToCallOutcome.LEAD_UNALLOCATED),
        (34, 503, ClickToCallOutcome.LEAD_CONGESTION),
        (38, None, ClickToCallOutcome.LEAD_CONGESTION),
        (41, None, ClickToCallOutcome.LEAD_CONGESTION),
        (42, None, ClickToCallOutcome.LEAD_CONGESTION),
        (21, 603, ClickToCallOutcome.LEAD_REJECTED),
        (21, 403, ClickToCallOutcome.LEAD_REJECTED),
        (16, None, ClickToCallOutcome.LEAD_FAILED),
        (127, None, ClickToCallOutcome.LEAD_FAILED),
    ],
)
def test_lead_unanswered_outcomes(cause: int, sip: int | None, outcome: ClickToCallOutcome) -> None:
    machine, _ = machine_in(CallState.LEAD_RINGING)
    actions = machine.handle(LeadHungUp(cause, sip, "text"), T0 + 10.4)
    assert io_actions(actions) == [
        HangupChannel(AGENT, "normal"),
        StopRecording(RECORDING),
        DestroyBridge(BRIDGE),
    ]
    assert machine.outcome is outcome
    actions = machine.handle(AgentHungUp(16), T0 + 10.5)
    assert finished(actions) == [Finished(outcome)]
    record = machine.record
    assert (record.lead_hangup_cause, record.lead_sip_code) == (cause, sip)
    assert record.ring_seconds == pytest.approx(6.0)
    assert record.lead_answered_at is None and record.bridged_at is None
    assert not record.abandoned


def test_unknown_cause_after_the_dial_timeout_is_no_answer() -> None:
    machine, _ = machine_in(CallState.LEAD_RINGING)
    machine.handle(LeadHungUp(16), T0 + 4.4 + 25.0)
    assert machine.outcome is ClickToCallOutcome.LEAD_NO_ANSWER
    assert lead_outcome_for_cause(None, dial_timed_out=True) is ClickToCallOutcome.LEAD_NO_ANSWER
    assert lead_outcome_for_cause(None, dial_timed_out=False) is ClickToCallOutcome.LEAD_FAILED


def test_lead_answers_without_ringing_first() -> None:
    machine, _ = machine_in(CallState.LEAD_RINGING)
    machine.handle(LeadAnswered(), T0 + 6)
    assert machine.state is CallState.LEAD_ANSWERED
    assert machine.record.lead_ringing_at is None
    assert machine.record.ring_seconds == pytest.approx(1.6)


def test_lead_not_joined_in_time_is_a_failed_abandoned_call() -> None:
    machine, _ = machine_in(CallState.LEAD_ANSWERED)
    actions = machine.handle_timer(T0 + 12.0 + 5.0)
    assert io_actions(actions) == [
        HangupChannel(LEAD, "normal"),
        HangupChannel(AGENT, "normal"),
        StopRecording(RECORDING),
        DestroyBridge(BRIDGE),
    ]
    assert machine.outcome is ClickToCallOutcome.LEAD_FAILED
    assert machine.record.abandoned


# -- hang-ups at every state -----------------------------------------------------------------

AGENT_HANGUP_OUTCOMES = {
    CallState.AGENT_RINGING: ClickToCallOutcome.AGENT_NO_ANSWER,
    CallState.AGENT_ANSWERED: ClickToCallOutcome.AGENT_HUNG_UP_BEFORE_LEAD,
    CallState.GATE_RECHECK: ClickToCallOutcome.AGENT_HUNG_UP_BEFORE_LEAD,
    CallState.LEAD_RINGING: ClickToCallOutcome.AGENT_HUNG_UP_BEFORE_LEAD,
    CallState.LEAD_ANSWERED: ClickToCallOutcome.AGENT_HUNG_UP,
    CallState.BRIDGED: ClickToCallOutcome.COMPLETED,
}


def expected_teardown(state: CallState, *, agent: bool, lead: bool) -> list[object]:
    """The teardown actions for a call ended in `state`, given which legs are still up."""
    lead_dialed = state in (CallState.LEAD_RINGING, CallState.LEAD_ANSWERED, CallState.BRIDGED)
    recording = state not in (CallState.AGENT_RINGING, CallState.AGENT_ANSWERED)
    bridge = state is not CallState.AGENT_RINGING
    out: list[object] = []
    if lead and lead_dialed:
        out.append(HangupChannel(LEAD, "normal"))
    if agent:
        out.append(HangupChannel(AGENT, "normal"))
    if recording:
        out.append(StopRecording(RECORDING))
    if bridge:
        out.append(DestroyBridge(BRIDGE))
    return out


@pytest.mark.parametrize("state", LIVE_STATES)
def test_agent_hangs_up_at_every_state(state: CallState) -> None:
    machine, _ = machine_in(state)
    actions = machine.handle(AgentHungUp(16), T0 + 50)
    outcome = AGENT_HANGUP_OUTCOMES[state]
    teardown = expected_teardown(state, agent=False, lead=True)
    assert io_actions(actions)[: len(teardown)] == teardown
    assert machine.outcome is outcome
    assert machine.record.ended_by == "agent"
    if state in (CallState.LEAD_RINGING, CallState.LEAD_ANSWERED, CallState.BRIDGED):
        assert machine.state is CallState.ENDING
        actions = machine.handle(LeadHungUp(16), T0 + 50.2)
    assert finished(actions) == [Finished(outcome)]
    assert machine.state is CallState.ENDED
    assert machine.record.ended_at == at(50)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        (CallState.LEAD_ANSWERED, ClickToCallOutcome.LEAD_HUNG_UP),
        (CallState.BRIDGED, ClickToCallOutcome.COMPLETED),
    ],
)
def test_lead_hangs_up_after_answering(state: CallState, outcome: ClickToCallOutcome) -> None:
    machine, _ = machine_in(state)
    actions = machine.handle(LeadHungUp(16, 200), T0 + 50)
    assert io_actions(actions) == expected_teardown(state, agent=True, lead=False)
    assert machine.outcome is outcome
    assert not machine.record.abandoned
    assert finished(machine.handle(AgentHungUp(16), T0 + 51)) == [Finished(outcome)]


@pytest.mark.parametrize("state", [CallState.AGENT_RINGING, CallState.AGENT_ANSWERED, CallState.GATE_RECHECK])
def test_a_lead_hangup_before_the_lead_is_dialed_is_ignored(state: CallState) -> None:
    machine, _ = machine_in(state)
    assert machine.handle(LeadHungUp(16), T0 + 50) == []
    assert machine.state is state


def test_agent_hangs_up_while_lead_answered_is_counted_abandoned() -> None:
    machine, _ = machine_in(CallState.LEAD_ANSWERED)
    machine.handle(AgentHungUp(16), T0 + 12.1)
    machine.handle(LeadHungUp(16), T0 + 12.3)
    record = machine.record
    assert record.outcome is ClickToCallOutcome.AGENT_HUNG_UP
    assert record.abandoned
    assert record.to_crm_call()["outcome"] == "abandoned"


@pytest.mark.parametrize("by", list(HangupBy))
@pytest.mark.parametrize("state", [CallState.REQUESTED, *LIVE_STATES])
def test_hangup_requested_at_every_state(state: CallState, by: HangupBy) -> None:
    machine, _ = machine_in(state)
    actions = machine.handle(HangupRequested(by), T0 + 50)
    outcome = ClickToCallOutcome.COMPLETED if state is CallState.BRIDGED else ClickToCallOutcome.CANCELLED
    assert machine.outcome is outcome
    assert machine.record.ended_by == by.value
    if state is CallState.REQUESTED:
        assert io_actions(actions) == [Finished(outcome)]
        return
    assert io_actions(actions) == expected_teardown(state, agent=True, lead=True)
    # A second request while tearing down changes nothing.
    assert machine.handle(HangupRequested(by), T0 + 50.1) == []
    final = machine.handle(AgentHungUp(16), T0 + 50.2)
    if state in (CallState.LEAD_RINGING, CallState.LEAD_ANSWERED, CallState.BRIDGED):
        assert finished(final) == []
        final = machine.handle(LeadHungUp(16), T0 + 50.3)
    assert finished(final) == [Finished(outcome)]


def test_teardown_timeout_ends_the_call_when_legs_never_confirm() -> None:
    machine, _ = machine_in(CallState.BRIDGED)
    machine.handle(HangupRequested(HangupBy.API), T0 + 30)
    assert machine.next_timer() == pytest.approx(T0 + 40)
    assert machine.handle_timer(T0 + 39.9) == []
    actions = machine.handle_timer(T0 + 40)
    assert io_actions(actions) == [Finished(ClickToCallOutcome.COMPLETED)]
    assert machine.state is CallState.ENDED
    assert machine.next_timer() is None
    assert machine.handle_timer(T0 + 100) == []


# -- recording -------------------------------------------------------------------------------


def test_recording_failure_means_the_lead_is_never_dialed() -> None:
    machine, _ = machine_in(CallState.AGENT_ANSWERED)
    machine.handle(BridgeCreated(), T0 + 4.1)
    actions = machine.handle(RecordingFailed("no space"), T0 + 4.2)
    assert io_actions(actions) == [HangupChannel(AGENT, "normal"), DestroyBridge(BRIDGE)]
    assert machine.outcome is ClickToCallOutcome.RECORDING_FAILED
    assert machine.record.detail == "recording: no space"
    # Late, out-of-order inputs cannot bring the call back.
    for offset, event in HAPPY_PATH[4:]:
        assert not any(isinstance(a, DialLead | CheckGate) for a in machine.handle(event, T0 + offset))  # type: ignore[arg-type]
    assert finished(machine.handle(AgentHungUp(16), T0 + 5)) == [Finished(ClickToCallOutcome.RECORDING_FAILED)]
    assert machine.record.recording_name is None


@pytest.mark.parametrize("bridge_created", [False, True])
def test_recording_not_confirmed_in_time_is_recording_failed(bridge_created: bool) -> None:
    machine, _ = machine_in(CallState.AGENT_ANSWERED, CallTimeouts(recording_start=3))
    if bridge_created:
        machine.handle(BridgeCreated(), T0 + 4.1)
    assert machine.next_timer() == pytest.approx(T0 + 7.0)
    actions = machine.handle_timer(T0 + 7.0)
    assert machine.outcome is ClickToCallOutcome.RECORDING_FAILED
    assert not any(isinstance(a, DialLead | CheckGate) for a in actions)
    expected: list[object] = [HangupChannel(AGENT, "normal")]
    if bridge_created:
        expected.append(StopRecording(RECORDING))
    expected.append(DestroyBridge(BRIDGE))
    assert io_actions(actions) == expected
    # The recording confirms too late: nothing happens.
    assert machine.handle(RecordingStarted(RECORDING), T0 + 7.5) == []


def test_bridge_creation_failure_is_recording_failed() -> None:
    machine, _ = machine_in(CallState.AGENT_ANSWERED)
    actions = machine.handle(BridgeFailed("500"), T0 + 4.1)
    assert io_actions(actions) == [HangupChannel(AGENT, "normal"), DestroyBridge(BRIDGE)]
    assert machine.outcome is ClickToCallOutcome.RECORDING_FAILED


def test_recording_started_for_another_recording_is_ignored() -> None:
    machine, _ = machine_in(CallState.AGENT_ANSWERED)
    machine.handle(BridgeCreated(), T0 + 4.1)
    assert machine.handle(RecordingStarted("someone-else"), T0 + 4.2) == []
    assert machine.state is CallState.AGENT_ANSWERED


def test_recording_started_before_it_was_asked_for_is_ignored() -> None:
    machine, _ = machine_in(CallState.AGENT_ANSWERED)
    assert machine.handle(RecordingStarted(RECORDING), T0 + 4.05) == []
    assert machine.state is CallState.AGENT_ANSWERED


@pytest.mark.parametrize("state", [CallState.GATE_RECHECK, CallState.LEAD_RINGING, CallState.BRIDGED])
def test_recording_failing_later_ends_the_call(state: CallState) -> None:
    # 42 CFR 422.2274(g)(2)(ii): recorded in their entirety.
    machine, _ = machine_in(state)
    actions = machine.handle(RecordingFailed("disk"), T0 + 20)
    assert machine.outcome is ClickToCallOutcome.RECORDING_FAILED
    assert StopRecording(RECORDING) not in actions
    assert DestroyBridge(BRIDGE) in actions


# -- the gate recheck ------------------------------------------------------------------------


def test_gate_recheck_blocks_and_the_lead_is_never_dialed() -> None:
    machine, _ = machine_in(CallState.GATE_RECHECK)
    decision = "33333333-3333-4333-8333-333333333333"
    actions = machine.handle(GateDecided(False, decision, ("opted_out",)), T0 + 4.4)
    assert io_actions(actions) == [
        HangupChannel(AGENT, "normal"),
        StopRecording(RECORDING),
        DestroyBridge(BRIDGE),
    ]
    record = machine.record
    assert record.outcome is ClickToCallOutcome.COMPLIANCE_BLOCKED
    assert record.recheck_decision_id == decision
    assert record.gate_reasons == ("opted_out",)
    assert record.detail == "blocked at recheck: opted_out"
    assert record.to_crm_call()["outcome"] == "blocked"
    assert machine.handle(GateDecided(True, RECHECK_ID), T0 + 4.5) == []


def test_gate_decision_timeout_fails_closed() -> None:
    machine, _ = machine_in(CallState.GATE_RECHECK)
    assert machine.next_timer() == pytest.approx(T0 + 4.3 + 3.0)
    actions = machine.handle_timer(T0 + 7.3)
    assert machine.outcome is ClickToCallOutcome.COMPLIANCE_BLOCKED
    assert not any(isinstance(a, DialLead) for a in actions)
    # The decision arrives after the deadline: too late, still no dial.
    assert machine.handle(GateDecided(True, RECHECK_ID), T0 + 7.4) == []


@pytest.mark.parametrize("state", [CallState.AGENT_RINGING, CallState.AGENT_ANSWERED])
def test_a_gate_decision_nobody_asked_for_is_ignored(state: CallState) -> None:
    machine, _ = machine_in(state)
    assert machine.handle(GateDecided(True, RECHECK_ID), T0 + 4.2) == []
    assert machine.state is state


# -- Asterisk connection lost ----------------------------------------------------------------


def test_asterisk_lost_before_start_ends_at_once() -> None:
    machine = new_machine()
    actions = machine.handle(AsteriskLost(), T0 + 1)
    assert io_actions(actions) == [Finished(ClickToCallOutcome.ASTERISK_LOST)]


@pytest.mark.parametrize("state", LIVE_STATES)
def test_asterisk_lost_ends_after_the_grace(state: CallState) -> None:
    machine, _ = machine_in(state, CallTimeouts(asterisk_grace=30, agent_ring=60, lead_ring=60, teardown=10))
    assert machine.handle(AsteriskLost(), T0 + 13) == []
    assert machine.handle(AsteriskLost(), T0 + 14) == []  # the grace is not extended
    assert machine.next_timer() is not None and machine.next_timer() <= T0 + 43  # type: ignore[operator]
    actions = machine.handle_timer(T0 + 43)
    assert machine.outcome in (
        ClickToCallOutcome.ASTERISK_LOST,
        ClickToCallOutcome.COMPLIANCE_BLOCKED,
        ClickToCallOutcome.RECORDING_FAILED,
        ClickToCallOutcome.LEAD_FAILED,
    )
    if state in (CallState.AGENT_RINGING, CallState.LEAD_RINGING, CallState.BRIDGED):
        assert machine.outcome is ClickToCallOutcome.ASTERISK_LOST
    assert machine.state is CallState.ENDING
    assert io_actions(actions) == expected_teardown(state, agent=True, lead=True)
    actions = machine.handle_timer(T0 + 53)
    assert len(finished(actions)) == 1 and machine.record.state is CallState.ENDED


@pytest.mark.parametrize("state", LIVE_STATES)
def test_reconciled_with_every_leg_alive_the_call_goes_on(state: CallState) -> None:
    machine, _ = machine_in(state)
    before = machine.next_timer()
    machine.handle(AsteriskLost(), T0 + 12.5)
    assert machine.handle(AsteriskReconciled(frozenset({AGENT, LEAD, "other"})), T0 + 12.6) == []
    assert machine.state is state
    assert machine.next_timer() == before


@pytest.mark.parametrize("state", LIVE_STATES)
def test_reconciled_with_a_leg_gone_ends_as_asterisk_lost(state: CallState) -> None:
    machine, _ = machine_in(state)
    machine.handle(AsteriskLost(), T0 + 12.5)
    actions = machine.handle(AsteriskReconciled(frozenset()), T0 + 12.6)
    assert machine.outcome is ClickToCallOutcome.ASTERISK_LOST
    assert io_actions(actions) == [
        *expected_teardown(state, agent=False, lead=False),
        Finished(ClickToCallOutcome.ASTERISK_LOST),
    ]


# -- late and duplicate events ---------------------------------------------------------------

EVERY_INPUT = [
    AgentRinging(),
    AgentAnswered(),
    AgentHungUp(16),
    BridgeCreated(),
    BridgeFailed("x"),
    RecordingStarted(RECORDING),
    RecordingFailed("x"),
    GateDecided(True, RECHECK_ID),
    LeadRinging(),
    LeadAnswered(),
    LeadHungUp(16),
    LeadJoined(),
    HangupRequested(HangupBy.AGENT),
    AsteriskLost(),
    AsteriskReconciled(frozenset()),
    OriginateFailed(Leg.AGENT),
    OriginateFailed(Leg.LEAD),
]


@pytest.mark.parametrize("event", EVERY_INPUT, ids=lambda e: type(e).__name__)
def test_events_after_the_end_are_ignored(event: object) -> None:
    machine, _ = machine_in(CallState.BRIDGED)
    machine.handle(LeadHungUp(16), T0 + 30)
    machine.handle(AgentHungUp(16), T0 + 30.1)
    record = machine.record
    assert machine.handle(event, T0 + 31) == []  # type: ignore[arg-type]
    assert machine.handle_timer(T0 + 1000) == []
    assert machine.record == record


def test_duplicate_events_do_nothing_twice() -> None:
    machine = new_machine()
    for offset, event in HAPPY_PATH:
        machine.handle(event, T0 + offset)  # type: ignore[arg-type]
        if not isinstance(event, Start):
            assert machine.handle(event, T0 + offset) == []  # type: ignore[arg-type]
    assert machine.state is CallState.BRIDGED


def test_start_twice_raises_naming_the_state() -> None:
    machine, _ = machine_in(CallState.AGENT_RINGING)
    with pytest.raises(InvalidStateError, match="cannot start the call: the call is agent_ringing"):
        machine.handle(Start(), T0 + 1)


def test_clock_going_backwards_never_makes_durations_negative() -> None:
    machine, _ = machine_in(CallState.BRIDGED)
    machine.handle(LeadHungUp(16), T0 + 5)  # earlier than the bridge at +12.2
    record = machine.record
    assert record.ended_at == at(12.2)
    assert record.talk_seconds == 0.0


# -- configuration errors --------------------------------------------------------------------


def test_bad_timeouts_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match=r"CallTimeouts\.gate_decision must be a positive"):
        CallTimeouts(gate_decision=0)
    with pytest.raises(ValueError, match=r"CallTimeouts\.backstop_slack"):
        CallTimeouts(backstop_slack=-1)


def test_bad_request_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match=r"CallRequest\.agent_endpoint must be a non-empty string"):
        CallRequest("c", "l", "a", "+15555550123", "PJSIP/x", " ", "+15555550100")


def test_initial_record() -> None:
    record = CallMachine(REQUEST, T0).record
    assert record.state is CallState.REQUESTED and record.version == 0
    assert record.requested_at == at(0) and record.ended_at is None and record.outcome is None


@pytest.mark.parametrize("disclosure", [True, False])
def test_the_recording_is_announced_into_the_bridge_when_the_gate_says_the_lead_may_be_in_an_all_party_state(
    disclosure: bool,
) -> None:
    from dialer.click_to_call.actions import PlayRecordingNotice

    machine = new_machine()
    for offset, event in HAPPY_PATH:
        if isinstance(event, GateDecided):
            event = GateDecided(True, RECHECK_ID, recording_disclosure=disclosure)
        actions = machine.handle(event, T0 + offset)  # type: ignore[arg-type]
    assert machine.state is CallState.BRIDGED
    notices = [action for action in actions if isinstance(action, PlayRecordingNotice)]
    assert notices == ([PlayRecordingNotice(f"{CALL_ID}-bridge", f"{CALL_ID}-recording-notice")] if disclosure else [])
