"""Same-call trunk failover of a click-to-call (the machine's side): a dial the carrier refuses
before the phone rings is the same call tried on the next trunk, on a new lead leg, the agent
waiting in the recorded bridge; what the called side answers (busy, no answer) is never retried."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crm_bridge.records import validate
from dialer.click_to_call.actions import DialLead, HangupChannel, RerouteLead
from dialer.click_to_call.inputs import (
    AgentHungUp,
    LeadAnswered,
    LeadHungUp,
    LeadJoined,
    LeadRinging,
    Rerouted,
    RerouteFailed,
)
from dialer.click_to_call.machine import CallMachine
from dialer.click_to_call.record import CallState, ClickToCallOutcome
from tests.click_to_call.helpers import CALL_ID, HAPPY_PATH, RECHECK_ID, REQUEST, STATE_AFTER, T0, io_actions

TWO_TRUNKS = replace(REQUEST, lead_endpoint="PJSIP/+15555550123@carrier-a", trunks=2)
DIALED_AT = T0 + 4.4  # the recheck allowed the dial (HAPPY_PATH)


def ringing(request: object = TWO_TRUNKS) -> CallMachine:
    machine = CallMachine(request, requested_at=T0)  # type: ignore[arg-type]
    for offset, event in HAPPY_PATH[: STATE_AFTER[CallState.LEAD_RINGING]]:
        machine.handle(event, T0 + offset)  # type: ignore[arg-type]
    assert machine.state is CallState.LEAD_RINGING
    return machine


def rerouted(endpoint: str = "carrier-b", decision: str = RECHECK_ID, at: float = DIALED_AT) -> Rerouted:
    return Rerouted(f"{CALL_ID}-lead-2", f"PJSIP/+15555550123@{endpoint}", endpoint, decision, at)


@pytest.mark.parametrize(("cause", "sip"), [(34, 503), (38, None), (18, 408), (0, 503)])
def test_a_carrier_refusal_before_ringing_asks_for_the_next_trunk(cause: int, sip: int | None) -> None:
    machine = ringing()
    actions = machine.handle(LeadHungUp(cause, sip, "Circuit/channel congestion"), DIALED_AT + 0.3)
    assert io_actions(actions) == [
        RerouteLead(CALL_ID, "+15555550123", 2, ("carrier-a",), False, cause, sip)]
    assert machine.state is CallState.LEAD_RINGING and machine.outcome is None


def test_the_retry_dials_a_new_leg_on_the_next_trunk_and_the_call_goes_on() -> None:
    machine = ringing()
    machine.handle(LeadHungUp(34, 503), DIALED_AT + 0.3)
    actions = machine.handle(rerouted(), DIALED_AT + 0.4)
    assert io_actions(actions) == [DialLead(f"{CALL_ID}-lead-2", "PJSIP/+15555550123@carrier-b", "+15555550100",
                                            25.0)]
    assert machine.ids.lead_channel == f"{CALL_ID}-lead-2"
    machine.handle(LeadRinging(), DIALED_AT + 1.0)
    machine.handle(LeadAnswered(), DIALED_AT + 3.0)
    machine.handle(LeadJoined(), DIALED_AT + 3.1)
    assert machine.state is CallState.BRIDGED
    machine.handle(LeadHungUp(16, None), DIALED_AT + 20.0)
    machine.handle(AgentHungUp(16), DIALED_AT + 20.1)
    record = machine.record
    assert machine.outcome is ClickToCallOutcome.COMPLETED
    assert record.trunk == "carrier-b"
    (failed,) = record.trunk_attempts
    assert (failed.trunk, failed.cause, failed.sip_code) == ("carrier-a", 34, 503)
    assert record.ring_seconds == pytest.approx(2.6)  # from the retry's dial
    assert record.lead_hangup_cause == 16 and record.lead_sip_code is None
    crm = record.to_crm_call()
    attempts = crm["trunk_attempts"]
    assert isinstance(attempts, list)
    (attempt,) = attempts
    assert {k: attempt[k] for k in ("trunk", "cause", "sip_code")} == {"trunk": "carrier-a", "cause": 34,
                                                                       "sip_code": 503}
    assert attempt["at"].startswith("2023-11-14T22:13:24.")
    assert validate("call", crm)["trunk_attempts"] == [attempt]


def test_a_renewed_gate_decision_becomes_the_calls_decision() -> None:
    machine = ringing()
    # The recheck is older than its validity when the 503 comes back: the gate decides again.
    (ask,) = io_actions(machine.handle(LeadHungUp(34, 503), DIALED_AT + 12.0))
    assert isinstance(ask, RerouteLead) and ask.ask_gate
    assert machine.handle(LeadHungUp(34, 503), DIALED_AT + 12.0) == []  # the failed leg ends once
    machine.handle(rerouted(decision="renewed", at=DIALED_AT + 12.1), DIALED_AT + 12.1)
    assert machine.record.recheck_decision_id == "renewed"
    assert machine.decided_at == DIALED_AT + 12.1


@pytest.mark.parametrize(("cause", "sip"), [(17, 486), (19, 480), (1, 404), (21, 603), (16, None)])
def test_the_called_sides_answer_is_never_retried(cause: int, sip: int | None) -> None:
    machine = ringing()
    actions = machine.handle(LeadHungUp(cause, sip), DIALED_AT + 0.3)
    assert not [a for a in actions if isinstance(a, RerouteLead)]
    assert machine.state is CallState.ENDING


def test_a_dial_that_rang_is_not_retried_elsewhere() -> None:
    """It reached the person's network: trying another trunk would ring them twice."""
    machine = ringing()
    machine.handle(LeadRinging(), DIALED_AT + 0.5)
    actions = machine.handle(LeadHungUp(34, 503), DIALED_AT + 3.0)
    assert not [a for a in actions if isinstance(a, RerouteLead)]
    assert machine.outcome is ClickToCallOutcome.LEAD_CONGESTION


def test_one_trunk_means_no_retry_and_the_last_trunk_ends_the_call() -> None:
    single = ringing(replace(TWO_TRUNKS, trunks=1))
    single.handle(LeadHungUp(34, 503), DIALED_AT + 0.3)
    assert single.outcome is ClickToCallOutcome.LEAD_CONGESTION
    machine = ringing()
    machine.handle(LeadHungUp(34, 503), DIALED_AT + 0.3)
    machine.handle(rerouted(), DIALED_AT + 0.4)
    actions = machine.handle(LeadHungUp(34, 503), DIALED_AT + 0.8)
    assert not [a for a in actions if isinstance(a, RerouteLead)]
    assert machine.outcome is ClickToCallOutcome.LEAD_CONGESTION
    assert [a.trunk for a in machine.record.trunk_attempts] == ["carrier-a"]
    assert machine.record.trunk == "carrier-b"


def test_no_trunk_left_ends_the_call_with_the_carriers_answer_and_why() -> None:
    machine = ringing()
    machine.handle(LeadHungUp(34, 503), DIALED_AT + 0.3)
    actions = machine.handle(RerouteFailed("no other trunk has a free channel now"), DIALED_AT + 0.4)
    assert HangupChannel(f"{CALL_ID}-agent", "normal") in actions
    assert machine.outcome is ClickToCallOutcome.LEAD_CONGESTION
    assert machine.record.detail == "not retried on another trunk: no other trunk has a free channel now"


def test_the_agent_hanging_up_between_two_trunks_ends_the_call_and_a_late_answer_is_ignored() -> None:
    machine = ringing()
    machine.handle(LeadHungUp(34, 503), DIALED_AT + 0.3)
    machine.handle(AgentHungUp(16), DIALED_AT + 0.35)
    assert machine.state is CallState.ENDED
    assert machine.outcome is ClickToCallOutcome.AGENT_HUNG_UP_BEFORE_LEAD
    assert machine.handle(rerouted(), DIALED_AT + 0.4) == []


def test_a_stale_reroute_answer_fails_the_call_rather_than_dialing_an_unrouted_leg() -> None:
    machine = ringing()
    machine.handle(LeadHungUp(34, 503), DIALED_AT + 0.3)
    wrong = Rerouted(f"{CALL_ID}-lead-7", "PJSIP/+15555550123@carrier-b", "carrier-b", RECHECK_ID, DIALED_AT)
    actions = machine.handle(wrong, DIALED_AT + 0.4)
    assert not [a for a in actions if isinstance(a, DialLead)]
    assert machine.outcome is ClickToCallOutcome.LEAD_FAILED


def test_a_second_report_of_the_failed_legs_end_does_not_end_the_retry() -> None:
    """Asterisk may report a channel's end twice, and the retry can be dialed between the two."""
    machine = ringing()
    machine.handle(LeadHungUp(34, 503, channel_id=f"{CALL_ID}-lead"), DIALED_AT + 0.3)
    machine.handle(rerouted(), DIALED_AT + 0.4)
    assert machine.handle(LeadHungUp(34, 503, channel_id=f"{CALL_ID}-lead"), DIALED_AT + 0.41) == []
    assert machine.state is CallState.LEAD_RINGING and machine.outcome is None
    machine.handle(LeadHungUp(17, 486, channel_id=f"{CALL_ID}-lead-2"), DIALED_AT + 2.0)
    assert machine.outcome is ClickToCallOutcome.LEAD_BUSY
