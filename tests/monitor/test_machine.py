"""The supervisor monitor's pure state machine, driven with explicit times (no IO)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_bridge.records import validate
from dialer.monitor import machine as m

T0 = 1_700_000_000.0
REQUEST = m.MonitorRequest(
    monitor_id="mon-0123456789abcdef", call_id="call-1", call_kind="click_to_call", agent_id="agent-1",
    agent_channel="call-1-agent", call_bridge="call-1-bridge", endpoint="supervisor01", mode=m.MonitorMode.LISTEN,
    requested_by="tok-1", campaign_id="camp-1", ring_timeout=20, setup_timeout=10, teardown_timeout=5,
)
SUP = REQUEST.supervisor_channel
BRIDGE = REQUEST.bridge


def _kinds(actions: list[m.MonitorAction]) -> list[type]:
    return [type(action) for action in actions]


def _no_emits(actions: list[m.MonitorAction]) -> list[m.MonitorAction]:
    return [a for a in actions if not isinstance(a, m.Emit)]


def connected(mode: m.MonitorMode = m.MonitorMode.LISTEN) -> m.MonitorSession:
    """A session whose supervisor answered and whose first mode is wired."""
    session = m.MonitorSession(REQUEST if mode is REQUEST.mode else _with_mode(mode), T0)
    session.handle(m.Start(), T0)
    session.handle(m.SupervisorAnswered(), T0 + 3)
    if mode is m.MonitorMode.BARGE:
        session.handle(m.Entered(SUP, REQUEST.call_bridge), T0 + 3.2)
    else:
        session.handle(m.SnoopUp(REQUEST.snoop_id(1)), T0 + 3.1)
        session.handle(m.Entered(REQUEST.snoop_id(1), BRIDGE), T0 + 3.2)
        session.handle(m.Entered(SUP, BRIDGE), T0 + 3.2)
    assert session.state is m.MonitorState.CONNECTED and session.mode_active
    return session


def _with_mode(mode: m.MonitorMode) -> m.MonitorRequest:
    from dataclasses import replace

    return replace(REQUEST, mode=mode)


def test_listen_dials_the_supervisor_then_snoops_spy_both_into_the_monitor_bridge() -> None:
    session = m.MonitorSession(REQUEST, T0)
    actions = session.handle(m.Start(), T0)
    assert actions[0] == m.OriginateSupervisor(SUP, "PJSIP/supervisor01", 20)
    assert isinstance(actions[1], m.Emit) and actions[1].record.state is m.MonitorState.DIALING
    assert session.next_timer() == T0 + 20 + m.BACKSTOP_SLACK

    actions = session.handle(m.SupervisorAnswered(), T0 + 3)
    snoop = REQUEST.snoop_id(1)
    assert _no_emits(actions) == [m.CreateBridge(BRIDGE), m.StartSnoop(snoop, "call-1-agent", "both", "none")]
    assert session.state is m.MonitorState.CONNECTED and not session.mode_active
    # The snoop can be bridged once it is in the app; the supervisor goes into the same bridge.
    assert session.handle(m.SnoopUp(snoop), T0 + 3.1) == [m.AddToBridge(BRIDGE, (snoop, SUP))]
    assert session.handle(m.Entered(snoop, BRIDGE), T0 + 3.2) == []
    actions = session.handle(m.Entered(SUP, BRIDGE), T0 + 3.2)
    assert _kinds(actions) == [m.Emit] and session.mode_active and session.next_timer() is None
    record = session.record
    assert record.answered_at == T0 + 3 and record.mode is m.MonitorMode.LISTEN and record.mode_active


def test_whisper_snoops_with_whisper_out_so_only_the_agent_hears_the_supervisor() -> None:
    session = m.MonitorSession(_with_mode(m.MonitorMode.WHISPER), T0)
    session.handle(m.Start(), T0)
    actions = session.handle(m.SupervisorAnswered(), T0 + 2)
    assert m.StartSnoop(REQUEST.snoop_id(1), "call-1-agent", "both", "out") in actions


def test_barge_puts_the_supervisor_in_the_calls_bridge() -> None:
    session = m.MonitorSession(_with_mode(m.MonitorMode.BARGE), T0)
    session.handle(m.Start(), T0)
    actions = _no_emits(session.handle(m.SupervisorAnswered(), T0 + 2))
    assert actions == [m.CreateBridge(BRIDGE), m.AddToBridge("call-1-bridge", (SUP,))]
    assert not any(isinstance(a, m.StartSnoop) for a in actions)
    assert _kinds(session.handle(m.Entered(SUP, "call-1-bridge"), T0 + 2.1)) == [m.Emit]
    assert session.mode_active


def test_switching_modes_hangs_up_the_old_snoop_first_and_keeps_the_supervisor_leg() -> None:
    session = connected(m.MonitorMode.LISTEN)
    first, second, third = (REQUEST.snoop_id(n) for n in (1, 2, 3))
    actions = _no_emits(session.handle(m.ChangeMode(m.MonitorMode.WHISPER), T0 + 10))
    assert actions == [m.HangUp(first), m.StartSnoop(second, "call-1-agent", "both", "out")]
    assert not session.mode_active
    # The supervisor is already in the monitor bridge: only the new snoop is added.
    assert session.handle(m.SnoopUp(second), T0 + 10.1) == [m.AddToBridge(BRIDGE, (second,))]
    assert _kinds(session.handle(m.Entered(second, BRIDGE), T0 + 10.2)) == [m.Emit] and session.mode_active
    assert session.handle(m.SnoopGone(first), T0 + 10.3) == []  # ours: not an end

    actions = _no_emits(session.handle(m.ChangeMode(m.MonitorMode.BARGE), T0 + 20))
    assert actions == [m.HangUp(second), m.AddToBridge("call-1-bridge", (SUP,))]
    assert _kinds(session.handle(m.Entered(SUP, "call-1-bridge"), T0 + 20.1)) == [m.Emit]

    actions = _no_emits(session.handle(m.ChangeMode(m.MonitorMode.LISTEN), T0 + 30))
    assert actions == [m.StartSnoop(third, "call-1-agent", "both", "none")]
    # Back from the call's bridge: the supervisor moves with the new snoop.
    assert session.handle(m.SnoopUp(third), T0 + 30.1) == [m.AddToBridge(BRIDGE, (third, SUP))]
    session.handle(m.Entered(third, BRIDGE), T0 + 30.2)
    assert not session.mode_active  # the supervisor has not entered the monitor bridge yet
    session.handle(m.Entered(SUP, BRIDGE), T0 + 30.2)
    assert session.mode_active
    assert [mode for mode, _ in session.record.modes] == ["listen", "whisper", "barge", "listen"]
    assert [at for _, at in session.record.modes] == [T0, T0 + 10, T0 + 20, T0 + 30]


def test_asking_for_the_mode_already_on_changes_nothing() -> None:
    session = connected()
    version = session.version
    assert session.handle(m.ChangeMode(m.MonitorMode.LISTEN), T0 + 5) == []
    assert session.version == version and len(session.modes) == 1


def test_a_mode_asked_while_the_supervisor_rings_is_applied_on_answer() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    assert _kinds(session.handle(m.ChangeMode(m.MonitorMode.WHISPER), T0 + 1)) == [m.Emit]
    actions = session.handle(m.SupervisorAnswered(), T0 + 2)
    assert m.StartSnoop(REQUEST.snoop_id(1), "call-1-agent", "both", "out") in actions


def test_the_call_ending_tears_everything_down_and_ends_with_call_ended() -> None:
    session = connected()
    actions = session.handle(m.CallEnded(), T0 + 40)
    assert _no_emits(actions) == [m.HangUp(REQUEST.snoop_id(1)), m.HangUp(SUP), m.DestroyBridge(BRIDGE)]
    assert session.state is m.MonitorState.ENDING and session.record.end_reason is m.EndReason.CALL_ENDED
    assert session.handle(m.SnoopGone(REQUEST.snoop_id(1)), T0 + 40.1) == []
    actions = session.handle(m.SupervisorGone(16, "Normal Clearing"), T0 + 40.2)
    assert _kinds(actions) == [m.Emit, m.Finished]
    record = session.record
    assert record.state is m.MonitorState.ENDED and record.ended_at == T0 + 40.2
    assert record.end_reason is m.EndReason.CALL_ENDED
    assert session.handle(m.ChangeMode(m.MonitorMode.BARGE), T0 + 41) == []
    assert session.handle(m.CallEnded(), T0 + 41) == []
    assert session.next_timer() is None


def test_the_agents_channel_vanishing_takes_the_snoop_and_ends_the_monitor() -> None:
    session = connected()
    actions = session.handle(m.SnoopGone(REQUEST.snoop_id(1)), T0 + 9)
    assert session.state is m.MonitorState.ENDING and session.end_reason is m.EndReason.CALL_ENDED
    assert m.HangUp(SUP) in actions and m.HangUp(REQUEST.snoop_id(1)) not in actions


@pytest.mark.parametrize(
    ("cause", "reason"),
    [(19, m.EndReason.SUPERVISOR_NO_ANSWER), (18, m.EndReason.SUPERVISOR_NO_ANSWER),
     (17, m.EndReason.SUPERVISOR_BUSY), (21, m.EndReason.SUPERVISOR_BUSY),
     (20, m.EndReason.SUPERVISOR_UNREACHABLE), (3, m.EndReason.SUPERVISOR_UNREACHABLE)],
)
def test_a_supervisor_who_does_not_answer_ends_the_monitor_with_a_reason(cause: int, reason: m.EndReason) -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    actions = session.handle(m.SupervisorGone(cause, "x"), T0 + 20)
    assert _kinds(actions) == [m.Emit, m.Finished]  # nothing of ours is left to tear down
    assert session.record.end_reason is reason and session.record.supervisor_cause == cause
    assert session.record.answered_at is None


def test_the_ring_backstop_hangs_up_the_supervisor_leg() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    assert session.handle_timer(T0 + 10) == []  # not due yet
    actions = session.handle_timer(T0 + 26)
    assert _no_emits(actions) == [m.HangUp(SUP)]
    assert session.end_reason is m.EndReason.SUPERVISOR_NO_ANSWER and session.state is m.MonitorState.ENDING
    # The leg never reports back: the teardown timer ends the session anyway.
    assert session.next_timer() == T0 + 26 + 5
    assert _kinds(session.handle_timer(T0 + 31)) == [m.Emit, m.Finished]


def test_a_refused_originate_ends_at_once() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    actions = session.handle(m.OriginateFailed("Allocation failed"), T0 + 0.1)
    assert _kinds(actions) == [m.Emit, m.Finished]
    assert session.end_reason is m.EndReason.SUPERVISOR_UNREACHABLE and session.end_detail == "Allocation failed"


def test_stop_while_ringing_hangs_up_the_ringing_leg() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    assert _no_emits(session.handle(m.Stop(), T0 + 2)) == [m.HangUp(SUP)]
    assert _kinds(session.handle(m.SupervisorGone(16), T0 + 2.1)) == [m.Emit, m.Finished]
    assert session.record.end_reason is m.EndReason.STOPPED


def test_a_supervisor_hanging_up_ends_the_monitor() -> None:
    session = connected()
    actions = session.handle(m.SupervisorGone(16, "Normal Clearing"), T0 + 8)
    assert _no_emits(actions) == [m.HangUp(REQUEST.snoop_id(1)), m.DestroyBridge(BRIDGE)]
    assert session.end_reason is m.EndReason.SUPERVISOR_HUNG_UP
    assert _kinds(session.handle(m.SnoopGone(REQUEST.snoop_id(1)), T0 + 8.1)) == [m.Emit, m.Finished]


def test_a_refused_step_or_a_mode_never_wired_ends_with_setup_failed() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    session.handle(m.SupervisorAnswered(), T0 + 1)
    actions = session.handle(m.StepFailed("snoop", "404 Channel not found", REQUEST.snoop_id(1)), T0 + 1.1)
    assert m.HangUp(REQUEST.snoop_id(1)) not in actions  # it was never made
    assert session.end_reason is m.EndReason.SETUP_FAILED and "snoop" in (session.end_detail or "")

    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    session.handle(m.SupervisorAnswered(), T0 + 1)
    assert session.next_timer() == T0 + 11
    session.handle_timer(T0 + 11)
    assert session.end_reason is m.EndReason.SETUP_FAILED


def test_a_late_snoop_of_an_earlier_mode_is_hung_up() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0)
    session.handle(m.SupervisorAnswered(), T0 + 1)
    session.handle(m.ChangeMode(m.MonitorMode.WHISPER), T0 + 1.05)  # before snoop 1 came up
    assert session.handle(m.SnoopUp(REQUEST.snoop_id(1)), T0 + 1.1) == [m.HangUp(REQUEST.snoop_id(1))]


def test_start_twice_is_an_error_and_time_never_runs_backwards() -> None:
    session = m.MonitorSession(REQUEST, T0)
    session.handle(m.Start(), T0 + 5)
    with pytest.raises(m.InvalidStateError, match="dialing"):
        session.handle(m.Start(), T0 + 6)
    session.handle(m.SupervisorAnswered(), T0 + 1)  # an earlier clock reading
    assert session.record.answered_at == T0 + 6  # the latest time seen


def test_records_are_valid_crm_monitor_sessions() -> None:
    session = connected()
    session.handle(m.ChangeMode(m.MonitorMode.WHISPER), T0 + 9)
    session.handle(m.Stop(), T0 + 12)
    normal = validate("monitor_session", session.record.to_crm())
    assert normal["modes"] == [{"mode": "listen", "at": "2023-11-14T22:13:20Z"},
                               {"mode": "whisper", "at": "2023-11-14T22:13:29Z"}]
    assert normal["end_reason"] == "stopped" and normal["supervisor_endpoint"] == "supervisor01"
    assert session.record.to_json()["state"] == "ending"


_INPUTS = st.sampled_from([
    m.SupervisorAnswered(), m.SupervisorGone(16), m.SupervisorGone(19), m.OriginateFailed("x"),
    m.SnoopUp(REQUEST.snoop_id(1)), m.SnoopUp(REQUEST.snoop_id(2)), m.SnoopGone(REQUEST.snoop_id(1)),
    m.SnoopGone(REQUEST.snoop_id(2)), m.Entered(SUP, BRIDGE), m.Entered(SUP, "call-1-bridge"),
    m.Entered(REQUEST.snoop_id(1), BRIDGE), m.Entered(REQUEST.snoop_id(2), BRIDGE),
    m.ChangeMode(m.MonitorMode.LISTEN), m.ChangeMode(m.MonitorMode.WHISPER), m.ChangeMode(m.MonitorMode.BARGE),
    m.Stop(), m.CallEnded(), m.StepFailed("x", "y"), m.AsteriskLost(), "timer",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_INPUTS, max_size=30))
def test_any_sequence_finishes_at_most_once_with_increasing_versions(inputs: list[object]) -> None:
    session = m.MonitorSession(REQUEST, T0)
    now = T0
    emitted: list[int] = []
    finished = 0
    made: set[str] = set()
    hung_up: set[str] = set()
    for item in [m.Start(), *inputs]:
        now += 1.0
        was_ended = session.state is m.MonitorState.ENDED
        if item == "timer":
            deadline = session.next_timer()
            actions = session.handle_timer(deadline if deadline is not None else now)
        else:
            assert not isinstance(item, str)
            actions = session.handle(item, now)  # type: ignore[arg-type]
        if was_ended:
            assert actions == []
        for action in actions:
            if isinstance(action, m.Emit):
                emitted.append(action.record.version)
            if isinstance(action, m.Finished):
                finished += 1
            if isinstance(action, m.StartSnoop):
                made.add(action.snoop_id)
            if isinstance(action, m.HangUp):
                hung_up.add(action.channel_id)
    assert emitted == sorted(set(emitted))
    assert finished <= 1
    if session.state is not m.MonitorState.DIALING and session.state is not m.MonitorState.CONNECTED:
        # Ended: every snoop this session asked for was hung up (or reported gone) and so was
        # the supervisor's leg unless it went by itself.
        assert session.end_reason is not None
        gone = {getattr(i, "snoop_id", None) for i in inputs if isinstance(i, m.SnoopGone)}
        assert made <= hung_up | gone
