"""The campaign's pure logic with explicit `now`: agent sessions, the campaign call machine
(AMD, the 2-second connect, the safe-harbor message, press 9), the hopper and retry rules."""

from __future__ import annotations

import pytest

from crm_bridge.records import CallOutcome
from dialer.campaign import machine as cc
from dialer.campaign.agent import AgentSession, AgentState
from dialer.campaign.hopper import Hopper, HopperEntry, after_attempt
from dialer.pacing import EventKind
from dialer.runtime.errors import InvalidStateError

T0 = 1_800_000_000.0


# ---- agents ---------------------------------------------------------------------------------
def _agent(wrap: float = 5.0) -> AgentSession:
    return AgentSession("a1", ("c1",), "ags-1", T0, wrap_up_seconds=wrap)


def test_agent_goes_ready_reserved_on_call_wrap_up_and_back_on_the_timer() -> None:
    agent = _agent()
    assert agent.leg_up(T0 + 1).state is AgentState.READY
    assert agent.reserve("call-1", T0 + 2).call_id == "call-1"
    assert agent.connected(T0 + 2.1).state is AgentState.ON_CALL
    wrap = agent.call_ended(T0 + 30)
    assert wrap.state is AgentState.WRAP_UP and wrap.wrap_up_until == T0 + 35
    assert agent.next_timer() == T0 + 35
    assert agent.handle_timer(T0 + 34) is None
    ready = agent.handle_timer(T0 + 35)
    assert ready is not None and ready.state is AgentState.READY and ready.call_id is None
    assert [ready.version] == [5]


def test_disposition_ends_wrap_up_and_a_pause_asked_on_a_call_waits_for_its_end() -> None:
    agent = _agent()
    agent.leg_up(T0)
    agent.reserve("call-1", T0)
    agent.connected(T0)
    assert agent.pause("lunch", T0 + 1).state is AgentState.ON_CALL  # not cut short
    agent.call_ended(T0 + 10)
    paused = agent.disposed(T0 + 11)
    assert paused.state is AgentState.PAUSED and paused.pause_reason == "lunch"
    assert agent.ready(T0 + 20).state is AgentState.READY


def test_illegal_operations_name_the_state_and_a_lost_leg_always_logs_out() -> None:
    agent = _agent()
    with pytest.raises(InvalidStateError, match="logging_in; cannot be reserved"):
        agent.reserve("call-1", T0)
    agent.leg_up(T0)
    agent.reserve("call-1", T0)
    assert agent.logout(T0 + 1).state is AgentState.RESERVED  # after the call
    agent.connected(T0 + 2)
    assert agent.call_ended(T0 + 3).state is AgentState.LOGGED_OUT
    other = _agent()
    other.leg_up(T0)
    gone = other.leg_lost(T0 + 1)
    assert gone.state is AgentState.LOGGED_OUT and gone.logout_reason == "leg_lost"
    assert other.leg_lost(T0 + 2).version == gone.version  # once


# ---- the campaign call ------------------------------------------------------------------------
def _call(**changes: object) -> cc.CampaignCall:
    request = cc.CampaignCallRequest(call_id="cmp-1", campaign_id="c1", lead_id="l1", phone="+12125551104",
                                     caller_id="+18885550123", decision_id="d1", **changes)  # type: ignore[arg-type]
    return cc.CampaignCall(request, T0)


def _kinds(actions: list[cc.CallAction]) -> list[str]:
    return [type(action).__name__ for action in actions]


def _human(call: cc.CampaignCall, at: float = T0 + 5) -> list[cc.CallAction]:
    call.handle(cc.LeadAnswered(), T0 + 3)
    return call.handle(cc.AmdDecided("HUMAN", "HUMAN-500-800"), at)


def test_a_person_joins_an_agent_in_a_recorded_bridge_and_the_call_is_not_abandoned() -> None:
    call = _call()
    actions = _human(call)
    assert _kinds(actions) == ["Observe", "Emit", "PrepareBridge", "WantAgent"]
    # AMD decided at T0+5 after 0.5 s of silence: the greeting ended at T0+4.5, the clock runs from there.
    assert call.record.greeting_ended_at == T0 + 4.5
    assert call.next_timer() == T0 + 4.5 + 1.5
    assert call.handle(cc.BridgeReady("cmp-1-recording"), T0 + 5.05) == []
    actions = call.handle(cc.AgentAssigned("a1", "ags-1"), T0 + 5.1)
    assert isinstance(actions[-1], cc.ConnectAgent)
    actions = call.handle(cc.AgentJoined(), T0 + 5.2)
    assert call.state is cc.CampaignCallState.BRIDGED and call.record.bridged_at == T0 + 5.2
    actions = call.handle(cc.LeadGone(16), T0 + 40)
    assert _kinds(actions)[:2] == ["ReturnAgent", "TeardownBridge"]
    assert actions[0] == cc.ReturnAgent("a1", joined=True)
    crm = call.record.to_crm_call()
    assert (crm["outcome"], crm["abandoned"], crm["safe_harbor_played"], crm["amd_result"]) == (
        "answered", False, False, "HUMAN")
    assert crm["talk_seconds"] == pytest.approx(34.8)
    assert call.handle(cc.LeadGone(16), T0 + 41) == []  # silent after the end


@pytest.mark.parametrize("disclosure", [True, False])
def test_the_recording_is_announced_as_the_agent_joins_when_the_lead_may_be_in_an_all_party_state(
    disclosure: bool,
) -> None:
    call = _call(recording_disclosure=disclosure)
    _human(call)
    call.handle(cc.BridgeReady("cmp-1-recording"), T0 + 5.05)
    call.handle(cc.AgentAssigned("a1", "ags-1"), T0 + 5.1)
    actions = call.handle(cc.AgentJoined(), T0 + 5.2)
    notices = [action for action in actions if isinstance(action, cc.PlayRecordingNotice)]
    assert notices == ([cc.PlayRecordingNotice("cmp-1-bridge", "cmp-1-recording-notice")] if disclosure else [])


def test_no_agent_in_time_plays_the_safe_harbor_within_two_seconds_and_press_9_opts_out() -> None:
    call = _call()
    _human(call)
    call.handle(cc.BridgeReady("cmp-1-recording"), T0 + 5.05)
    actions = call.handle_timer(T0 + 6.5)
    assert _kinds(actions) == ["CancelWant", "Observe", "Emit", "PlaySafeHarbor"]
    assert isinstance(actions[1], cc.Observe) and actions[1].kind is EventKind.CALL_ABANDONED
    assert call.record.safe_harbor_played and call.record.abandoned
    # An agent who frees up now is too late: the call is not offered.
    assert call.handle(cc.AgentAssigned("a1", "ags-1"), T0 + 6.6) == []
    actions = call.handle(cc.DtmfReceived("9"), T0 + 9)
    assert actions[0] == cc.OptOutNumber("+12125551104", "l1", "cmp-1") and isinstance(actions[-1], cc.HangupLead)
    assert call.handle(cc.DtmfReceived("9"), T0 + 9.1) == []  # once
    call.handle(cc.LeadGone(16), T0 + 9.2)
    assert call.record.outcome is CallOutcome.ABANDONED and call.record.opted_out


@pytest.mark.parametrize(("status", "cause", "expected"), [
    ("HUMAN", "HUMAN-800-800", T0 + 9.2),
    ("HUMAN", "HUMAN-1200-800", T0 + 8.8),
    ("HUMAN", "HUMAN-30000-800", T0 + 5),  # never before the answer
    ("NOTSURE", "TOOLONG-5000", T0 + 10),  # still talking when the analysis ended: the decision
    ("HUMAN", "HUMAN", T0 + 10),  # no measure given
    ("HUMAN", "HUMAN-x-800", T0 + 10),
    ("MACHINE", "MAXWORDS-4-4", T0 + 10),
])
def test_the_greeting_ends_before_amd_decides_by_the_silence_amd_waited_for(
    status: str, cause: str, expected: float
) -> None:
    assert cc.greeting_end(status, cause, T0 + 10, T0 + 5) == pytest.approx(expected)


def test_the_two_seconds_count_from_the_greeting_not_from_the_amd_decision() -> None:
    call = _call()
    call.handle(cc.LeadAnswered(), T0 + 3)
    call.handle(cc.AmdDecided("HUMAN", "HUMAN-900-800"), T0 + 5)
    assert call.next_timer() == pytest.approx(T0 + 4.1 + 1.5)
    call.handle(cc.BridgeReady("r"), T0 + 5.05)
    call.handle(cc.AgentAssigned("a1", "ags-1"), T0 + 5.5)
    call.handle(cc.AgentJoined(), T0 + 6.3)  # 1.3 s after the decision, 2.2 s after the greeting
    assert call.record.abandoned
    # A silence longer than the wait leaves no time at all: the message plays at once.
    late = _call()
    late.handle(cc.LeadAnswered(), T0 + 3)
    late.handle(cc.AmdDecided("HUMAN", "HUMAN-2500-2500"), T0 + 6)
    assert late.next_timer() == T0 + 6
    late.handle(cc.BridgeReady("r"), T0 + 6.05)
    assert "PlaySafeHarbor" in _kinds(late.handle_timer(T0 + 6.05))


def test_an_agent_that_joins_after_two_seconds_still_counts_as_abandoned() -> None:
    call = _call(agent_wait=1.9)
    _human(call)
    call.handle(cc.AgentAssigned("a1", "ags-1"), T0 + 5.5)
    call.handle(cc.BridgeReady("r"), T0 + 6.0)
    call.handle(cc.AgentJoined(), T0 + 7.2)
    assert call.record.abandoned  # 2.2 s after the greeting


@pytest.mark.parametrize(("action", "expected"), [(cc.MachineAction.HANGUP, "HangupLead"),
                                                  (cc.MachineAction.MESSAGE, "LeaveMessage")])
def test_a_machine_is_hung_up_on_or_gets_the_message(action: cc.MachineAction, expected: str) -> None:
    call = _call(machine_action=action)
    call.handle(cc.LeadAnswered(), T0 + 3)
    actions = call.handle(cc.AmdDecided("MACHINE", "LONGGREETING"), T0 + 6)
    assert _kinds(actions)[-1] == expected
    actions = call.handle(cc.LeadGone(16), T0 + 30)
    assert call.record.outcome is CallOutcome.MACHINE and not call.record.abandoned
    assert not call.record.live_answer and "PrepareBridge" not in _kinds(actions)
    assert call.record.message_left is (action is cc.MachineAction.MESSAGE)


@pytest.mark.parametrize(("cause", "outcome"), [(17, CallOutcome.BUSY), (19, CallOutcome.NO_ANSWER),
                                                (1, CallOutcome.UNALLOCATED), (34, CallOutcome.CONGESTION),
                                                (21, CallOutcome.REJECTED)])
def test_unanswered_dials_end_with_their_cause(cause: int, outcome: CallOutcome) -> None:
    call = _call()
    actions = call.handle(cc.LeadGone(cause), T0 + 15)
    assert call.record.outcome is outcome and isinstance(actions[-1], cc.Finished)
    assert any(isinstance(a, cc.Observe) and a.kind is EventKind.DIAL_ENDED for a in actions)


def test_ring_timeout_below_fifteen_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match=r"64.1200\(a\)\(6\)"):
        _call(ring_timeout=10)
    with pytest.raises(ValueError, match="agent_wait"):
        _call(agent_wait=2.0)


def test_the_agent_leaving_mid_call_hangs_up_the_lead() -> None:
    call = _call()
    _human(call)
    call.handle(cc.BridgeReady("r"), T0 + 5.05)
    call.handle(cc.AgentAssigned("a1", "ags-1"), T0 + 5.1)
    call.handle(cc.AgentJoined(), T0 + 5.2)
    actions = call.handle(cc.AgentLeft(), T0 + 20)
    assert isinstance(actions[-1], cc.HangupLead)
    call.handle(cc.LeadGone(16), T0 + 20.1)
    assert call.record.outcome is CallOutcome.ANSWERED and not call.record.abandoned


# ---- hopper ---------------------------------------------------------------------------------
def _entry(lead_id: str) -> HopperEntry[str]:
    return HopperEntry(lead_id, "+12125551104", 0, lead_id)


def test_the_hopper_never_holds_a_lead_twice_and_speed_to_lead_goes_first() -> None:
    hopper: Hopper[str] = Hopper(4)
    assert hopper.add([_entry("a"), _entry("b"), _entry("a")], T0) == 2
    taken = hopper.take()
    assert taken is not None and taken.lead_id == "a"
    assert hopper.add([_entry("a")], T0) == 0  # in flight
    assert hopper.push_front(_entry("web"), T0)
    assert [hopper.take().lead_id for _ in range(2)] == ["web", "b"]  # type: ignore[union-attr]
    hopper.finished("a", after_attempt("busy", 1, T0))
    assert "a" in hopper.excluded(T0 + 60)
    assert "a" not in hopper.excluded(T0 + 601)
    assert hopper.add([_entry("a")], T0 + 601) == 1


def test_retry_rules_per_outcome() -> None:
    assert after_attempt("busy", 1, T0).next_attempt_at == T0 + 600
    assert after_attempt("busy", 6, T0).done
    assert after_attempt("answered", 1, T0).done
    assert after_attempt("unallocated", 1, T0).done
    assert after_attempt("machine", 1, T0).next_attempt_at == T0 + 4 * 3600


def test_stopping_the_campaign_ends_only_calls_nobody_has_answered() -> None:
    ringing = _call()
    ringing.handle(cc.Originated(), T0 + 0.1)
    assert "HangupLead" in _kinds(ringing.handle(cc.Stop(), T0 + 1))
    # Answered and still in AMD: a person may be there, so the call goes on to its decision.
    answered = _call()
    answered.handle(cc.Originated(), T0 + 0.1)
    answered.handle(cc.LeadAnswered(), T0 + 3)
    assert answered.handle(cc.Stop(), T0 + 3.5) == []
    assert _kinds(answered.handle(cc.AmdDecided("HUMAN", "HUMAN-500-800"), T0 + 5))[-1] == "WantAgent"


def test_a_callback_owned_by_an_agent_waits_for_that_agent_and_keeps_its_place() -> None:
    hopper: Hopper[str] = Hopper(4)
    owned = HopperEntry("cb", "+12125551104", 1, "cb", priority=5, owner_agent_id="ann")
    hopper.add([owned, _entry("x")], T0)
    taken = hopper.take(frozenset({"bob"}))  # Ann is busy: the callback is passed over, not lost
    assert taken is not None and taken.lead_id == "x"
    assert hopper.take(frozenset({"bob"})) is None
    taken = hopper.take(frozenset({"ann", "bob"}))
    assert taken is not None and taken.lead_id == "cb"


@pytest.mark.timeout(10)
async def test_identity_locks_serialise_one_person_not_everyone_and_leave_nothing_behind() -> None:
    import asyncio

    from dialer.campaign.api import KeyedLocks

    locks = KeyedLocks()
    order: list[str] = []

    async def post(name: str, keys: list[str], hold: float) -> None:
        async with locks.holding(keys):
            order.append(f"{name}+")
            await asyncio.sleep(hold)
            order.append(f"{name}-")

    await asyncio.gather(post("a", ["phone:1", "email:x"], 0.05), post("b", ["email:x", "phone:2"], 0.0),
                         post("c", ["phone:3"], 0.0))
    assert order.index("a-") < order.index("b+")  # same e-mail: one after the other
    assert order.index("c+") < order.index("a-")  # another person: not held up
    assert len(locks) == 0


def test_the_call_dials_once_through_amd_with_what_the_originate_needs() -> None:
    call = _call(lead_endpoint="PJSIP/+12125551104@trunk", amd_args="2500,1500,800", ring_timeout=20)
    assert call.handle(cc.Dial(), T0) == [
        cc.OriginateLead("cmp-1-lead", "PJSIP/+12125551104@trunk", "+18885550123", 20, "2500,1500,800")]
    assert call.handle(cc.Dial(), T0 + 0.1) == []  # never twice
    assert _kinds(call.handle(cc.Originated(), T0 + 0.2)) == ["Observe"]
    inbound = _call(inbound=True, lead_channel_id="PJSIP/trunk-0001")
    assert inbound.handle(cc.Dial(), T0) == []  # a received call is not dialed


def test_a_speed_to_lead_lead_is_taken_by_its_id_and_no_other() -> None:
    hopper: Hopper[str] = Hopper(4)
    hopper.add([_entry("a"), _entry("b")], T0)
    hopper.push_front(_entry("web"), T0)
    taken = hopper.take_lead("web")
    assert taken is not None and taken.lead_id == "web"
    assert hopper.take_lead("web") is None  # in flight now, not queued
    assert hopper.add([_entry("web")], T0) == 0
    assert [hopper.take().lead_id for _ in range(2)] == ["a", "b"]  # type: ignore[union-attr]


def test_a_disposition_ends_wrap_up_at_once() -> None:
    agent = AgentSession("ann", ("c1",), "ags-1", T0, wrap_up_seconds=30.0)
    agent.leg_up(T0 + 1)
    agent.reserve("cmp-1", T0 + 2)
    agent.connected(T0 + 3)
    assert agent.call_ended(T0 + 60).state is AgentState.WRAP_UP
    assert agent.disposed(T0 + 61).state is AgentState.READY  # not at the 30-s timer
    with pytest.raises(InvalidStateError):
        agent.disposed(T0 + 62)


@pytest.mark.parametrize(("steps", "outcome"), [
    ([], "canceled"),  # still dialing
    ([cc.LeadAnswered()], "canceled"),  # in AMD: nobody judged to be there yet
    ([cc.LeadAnswered(), cc.AmdDecided("HUMAN", "HUMAN-500-800")], "abandoned"),  # a person waiting for an agent
    ([cc.LeadAnswered(), cc.AmdDecided("MACHINE", "LONGGREETING")], "machine"),
])
def test_a_hangup_on_request_ends_the_call_with_what_it_was(steps: list[cc.CallInput], outcome: str) -> None:
    call = _call()
    for n, step in enumerate(steps):
        call.handle(step, T0 + 1 + n)
    actions = call.handle(cc.HangupRequested(by="supervisor"), T0 + 5)
    assert "HangupLead" in _kinds(actions) and call.state is cc.CampaignCallState.ENDING
    call.handle(cc.LeadGone(cause=16), T0 + 6)
    assert call.record.outcome is not None and call.record.outcome.value == outcome
    assert call.record.cause_text == "hung up by the supervisor"
    assert call.handle(cc.HangupRequested(by="agent"), T0 + 7) == []  # over: nothing more
