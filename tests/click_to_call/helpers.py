"""Drive a `CallMachine` to each state with explicit `now`s, for the call tests."""

from __future__ import annotations

from collections.abc import Sequence

from dialer.click_to_call.actions import CallAction, Emit, Finished
from dialer.click_to_call.inputs import (
    AgentAnswered,
    AgentRinging,
    BridgeCreated,
    GateDecided,
    LeadAnswered,
    LeadJoined,
    LeadRinging,
    RecordingStarted,
    Start,
)
from dialer.click_to_call.machine import CallMachine, CallRequest, CallTimeouts
from dialer.click_to_call.record import CallState

T0 = 1_700_000_000.0
CALL_ID = "call-1"
RECORDING = f"{CALL_ID}-recording"
GATE_ID = "11111111-1111-4111-8111-111111111111"
RECHECK_ID = "22222222-2222-4222-8222-222222222222"

REQUEST = CallRequest(
    call_id=CALL_ID,
    lead_id="lead-9",
    agent_id="agent-1001",
    campaign_id="camp-3",
    lead_number="+15555550123",
    lead_endpoint="PJSIP/+15555550123@trunk",
    agent_endpoint="PJSIP/agent1001",
    caller_id="+15555550100",
    gate_decision_id=GATE_ID,
)

# Inputs and the offsets (seconds after T0) at which the happy path applies them.
HAPPY_PATH: list[tuple[float, object]] = [
    (0.5, Start()),
    (1.0, AgentRinging()),
    (4.0, AgentAnswered()),
    (4.1, BridgeCreated()),
    (4.3, RecordingStarted(RECORDING)),
    (4.4, GateDecided(True, RECHECK_ID)),
    (5.0, LeadRinging()),
    (12.0, LeadAnswered()),
    (12.2, LeadJoined()),
]

# The state reached after each prefix of the happy path that changes state.
STATE_AFTER: dict[CallState, int] = {
    CallState.REQUESTED: 0,
    CallState.AGENT_RINGING: 2,
    CallState.AGENT_ANSWERED: 3,
    CallState.GATE_RECHECK: 5,
    CallState.LEAD_RINGING: 6,
    CallState.LEAD_ANSWERED: 8,
    CallState.BRIDGED: 9,
}

LIVE_STATES = [
    CallState.AGENT_RINGING,
    CallState.AGENT_ANSWERED,
    CallState.GATE_RECHECK,
    CallState.LEAD_RINGING,
    CallState.LEAD_ANSWERED,
    CallState.BRIDGED,
]


def new_machine(timeouts: CallTimeouts | None = None) -> CallMachine:
    return CallMachine(REQUEST, requested_at=T0, timeouts=timeouts)


def machine_in(
    state: CallState, timeouts: CallTimeouts | None = None
) -> tuple[CallMachine, list[CallAction]]:
    """A machine driven along the happy path until `state`; also every action it returned."""
    machine = new_machine(timeouts)
    actions: list[CallAction] = []
    for offset, event in HAPPY_PATH[: STATE_AFTER[state]]:
        actions += machine.handle(event, T0 + offset)  # type: ignore[arg-type]
    assert machine.state is state
    return machine, actions


def io_actions(actions: Sequence[CallAction]) -> list[CallAction]:
    """The actions without the `Emit` snapshots."""
    return [action for action in actions if not isinstance(action, Emit)]


def finished(actions: Sequence[CallAction]) -> list[Finished]:
    return [action for action in actions if isinstance(action, Finished)]


def last_record(actions: Sequence[CallAction]) -> Emit:
    emits = [action for action in actions if isinstance(action, Emit)]
    assert emits, "no snapshot emitted"
    return emits[-1]
