"""Same-call trunk failover and per-trunk channel limits: the pure decision, the router and the
campaign call's machine. Pure: no IO."""

from __future__ import annotations

import pytest

from crm_bridge.records import CallOutcome
from dialer.campaign import actions as a
from dialer.campaign import inputs as i
from dialer.campaign.machine import CampaignCall, CampaignCallRequest
from dialer.campaign.record import CampaignCallState
from dialer.pacing import EventKind
from dialer.provision.trunks import (
    DECISION_VALID_SECONDS,
    MAX_TRUNK_ATTEMPTS,
    RetryStep,
    Trunk,
    TrunkAttempt,
    TrunkAuth,
    TrunkRouter,
    retry_step,
    trunk_of,
)

pytestmark = pytest.mark.timeout(30)

T0 = 1_800_000_000.0
A = Trunk("carrier-a", "198.51.100.1", auth=TrunkAuth.IP)
B = Trunk("carrier-b", "198.51.100.2", auth=TrunkAuth.IP)
C = Trunk("carrier-c", "198.51.100.3", auth=TrunkAuth.IP)


# ---- the decision -------------------------------------------------------------------------------
def _step(cause: int | None, sip_code: int | None, *, provisional: bool = False, answered: bool = False,
          attempts: int = 1, trunks: int = 2, age: float = 0.5) -> RetryStep:
    return retry_step(cause, sip_code, provisional=provisional, answered=answered, attempts=attempts,
                      trunks=trunks, decided_at=T0, now=T0 + age)


@pytest.mark.parametrize(("cause", "sip_code"), [(34, 503), (34, None), (38, None), (41, 500), (42, None),
                                                 (102, 408), (16, 503), (0, 504), (None, 502)])
def test_a_carrier_failure_before_the_phone_rang_is_tried_on_the_next_trunk(cause: int | None,
                                                                             sip_code: int | None) -> None:
    assert _step(cause, sip_code) is RetryStep.SAME_DECISION


@pytest.mark.parametrize(("cause", "sip_code"), [(17, 486), (19, 480), (1, 404), (21, 603), (16, None),
                                                 (18, None), (None, None), (0, None), (3, None)])
def test_the_called_sides_answer_ends_the_call(cause: int | None, sip_code: int | None) -> None:
    assert _step(cause, sip_code) is RetryStep.END


def test_a_call_that_rang_or_was_answered_is_never_tried_again() -> None:
    assert _step(34, 503, provisional=True) is RetryStep.END  # the person's phone rang: not twice
    assert _step(102, 408, answered=True) is RetryStep.END


def test_each_trunk_is_tried_once_up_to_the_limit() -> None:
    assert _step(34, 503, attempts=1, trunks=1) is RetryStep.END  # one trunk: nothing to fail over to
    assert _step(34, 503, attempts=2, trunks=3) is RetryStep.SAME_DECISION
    assert _step(34, 503, attempts=3, trunks=3) is RetryStep.END
    assert _step(34, 503, attempts=MAX_TRUNK_ATTEMPTS, trunks=10) is RetryStep.END


def test_the_gate_decides_again_once_its_decision_is_old() -> None:
    assert _step(34, 503, age=DECISION_VALID_SECONDS) is RetryStep.SAME_DECISION
    assert _step(102, 408, age=DECISION_VALID_SECONDS + 0.1) is RetryStep.ASK_GATE  # a 32 s SIP timeout


def test_a_failed_try_is_kept_as_plain_json() -> None:
    assert TrunkAttempt("carrier-a", 34, 503, T0).to_json() == {
        "trunk": "carrier-a", "cause": 34, "sip_code": 503, "at": "2027-01-15T08:00:00Z"}
    assert trunk_of("PJSIP/+12125551205@carrier-b") == "carrier-b" and trunk_of("Local/1@x") == "x"
    assert trunk_of("nothing") == ""


# ---- the router: a retry, channels ----------------------------------------------------------------
def test_a_retry_skips_the_trunks_the_call_failed_on_and_gives_back_its_channel() -> None:
    router = TrunkRouter([A, B, C], 0.0)
    assert router.route(0.0, key="cmp-1") == "carrier-a"
    assert router.active("carrier-a") == 1
    assert router.route(1.0, key="cmp-1", exclude=("carrier-a",)) == "carrier-b"
    assert router.active("carrier-a") == 0 and router.active("carrier-b") == 1
    assert router.route(2.0, key="cmp-1", exclude=("carrier-a", "carrier-b")) == "carrier-c"
    assert router.route(3.0, key="cmp-1", exclude=("carrier-a", "carrier-b", "carrier-c")) is None
    assert router.active("carrier-c") == 0  # the call holds nothing while it has no trunk
    router.release("cmp-1")  # idempotent
    assert router.active("carrier-c") == 0


def test_calls_beyond_a_trunks_channels_go_to_the_next_trunk_or_wait() -> None:
    small = Trunk("carrier-a", "h", auth=TrunkAuth.IP, max_channels=2)
    other = Trunk("carrier-b", "h2", auth=TrunkAuth.IP, max_channels=1, calls_per_second=5.0)
    router = TrunkRouter([small, other], 0.0)
    assert router.capacity(0.0) == 3  # 2 channels on carrier-a, 1 on carrier-b (5 calls/s allowed)
    assert [router.route(0.0, key=f"c{n}") for n in range(4)] == ["carrier-a", "carrier-a", "carrier-b", None]
    assert router.capacity(0.0) == 0 and router.limit(10, 0.0) == 0
    router.dial_ended("c1", cause=16, sip_code=None, now=1.0)  # a call on carrier-a ended
    assert router.capacity(1.0) == 1
    assert router.route(1.0, key="c4") == "carrier-a"
    assert max(router.active("carrier-a"), 0) == 2 and router.active("carrier-b") == 1


def test_a_trunk_with_no_channel_limit_and_no_rate_sets_no_limit() -> None:
    router = TrunkRouter([A], 0.0)
    assert router.capacity(0.0) is None
    for n in range(50):
        assert router.route(0.0, key=f"c{n}") == "carrier-a"
    assert router.active("carrier-a") == 50


# ---- the campaign call: the same call on the next trunk -------------------------------------------
def _call(trunks: int = 2, decided_at: float = T0) -> CampaignCall:
    request = CampaignCallRequest(call_id="cmp-1", campaign_id="c1", lead_id="l1", phone="+12125551104",
                                  caller_id="+18885550100", decision_id="d-1", lead_endpoint="PJSIP/+12125551104@carrier-a",
                                  trunk="carrier-a", trunks=trunks, decided_at=decided_at)
    call = CampaignCall(request, T0)
    assert isinstance(call.handle(i.Dial(), T0)[0], a.OriginateLead)
    assert call.handle(i.Originated(), T0) == [a.Observe(EventKind.DIAL_PLACED)]
    return call


def _only(actions: list[a.CallAction], kind: type) -> object:
    found = [action for action in actions if isinstance(action, kind)]
    assert len(found) == 1, actions
    return found[0]


def test_a_503_redials_the_same_call_on_the_next_trunk_under_the_same_decision() -> None:
    call = _call()
    actions = call.handle(i.LeadGone(cause=34, sip_code=503, text="Circuit/channel congestion"), T0 + 0.4)
    reroute = _only(actions, a.RerouteLead)
    assert reroute == a.RerouteLead("cmp-1", "+12125551104", 2, ("carrier-a",), False, 34, 503)
    assert call.state is CampaignCallState.DIALING and call.record.trunk_attempts == (
        TrunkAttempt("carrier-a", 34, 503, T0 + 0.4),)
    assert call.record.cause_text is None  # the first leg's text is in its attempt, not the call's end
    actions = call.handle(i.Rerouted("cmp-1-lead-2", "PJSIP/+12125551104@carrier-b", "carrier-b", "d-1", T0),
                          T0 + 0.5)
    assert _only(actions, a.OriginateLead) == a.OriginateLead(
        "cmp-1-lead-2", "PJSIP/+12125551104@carrier-b", "+18885550100", 20, "")
    assert call.lead_channel == "cmp-1-lead-2"
    assert call.handle(i.Originated(), T0 + 0.5) == []  # the pacer counts one dial, not two
    # The new leg carries the call: AMD, the bridge on the new channel.
    call.handle(i.LeadAnswered(), T0 + 3)
    actions = call.handle(i.AmdDecided("HUMAN", "HUMAN-800-800"), T0 + 5)
    assert _only(actions, a.PrepareBridge) == a.PrepareBridge("cmp-1-bridge", "cmp-1-recording", "cmp-1-lead-2")
    row = call.record.to_crm_call()
    assert row["trunk"] == "carrier-b" and row["compliance_decision_id"] == "d-1"
    assert row["trunk_attempts"] == [{"trunk": "carrier-a", "cause": 34, "sip_code": 503,
                                      "at": "2027-01-15T08:00:00.400000Z"}]


def test_an_old_decision_is_asked_again_and_the_new_one_goes_on_the_row() -> None:
    call = _call(decided_at=T0 - 60)
    reroute = _only(call.handle(i.LeadGone(cause=102, sip_code=408), T0 + 32), a.RerouteLead)
    assert isinstance(reroute, a.RerouteLead) and reroute.ask_gate
    call.handle(i.Rerouted("cmp-1-lead-2", "PJSIP/+12125551104@carrier-b", "carrier-b", "d-2", T0 + 32), T0 + 32)
    assert call.record.decision_id == "d-2" and call.decided_at == T0 + 32


def test_no_trunk_left_or_a_blocked_retry_ends_the_call_as_congestion() -> None:
    call = _call()
    call.handle(i.LeadGone(cause=34, sip_code=503), T0 + 1)
    actions = call.handle(i.RerouteFailed("no other trunk has a free channel now"), T0 + 1)
    finished = _only(actions, a.Finished)
    assert isinstance(finished, a.Finished)
    assert finished.record.outcome is CallOutcome.CONGESTION and finished.record.trunk == "carrier-a"
    assert "not retried: no other trunk" in (finished.record.cause_text or "")
    assert len(finished.record.trunk_attempts) == 1


def test_the_last_trunks_failure_ends_the_call() -> None:
    call = _call(trunks=2)
    call.handle(i.LeadGone(cause=34, sip_code=503), T0 + 1)
    call.handle(i.Rerouted("cmp-1-lead-2", "PJSIP/+12125551104@carrier-b", "carrier-b", "d-1", T0), T0 + 1)
    actions = call.handle(i.LeadGone(cause=34, sip_code=503), T0 + 2)
    finished = _only(actions, a.Finished)
    assert isinstance(finished, a.Finished) and finished.record.outcome is CallOutcome.CONGESTION
    assert finished.record.trunk == "carrier-b" and finished.record.sip_code == 503


def test_a_call_that_rang_is_not_tried_elsewhere_and_old_legs_are_ignored() -> None:
    call = _call()
    call.handle(i.LeadRinging(), T0 + 1)
    actions = call.handle(i.LeadGone(cause=34, sip_code=503), T0 + 5)
    assert not [x for x in actions if isinstance(x, a.RerouteLead)]
    assert call.state is CampaignCallState.ENDED


def test_stopping_the_campaign_between_two_trunks_ends_the_call_at_once() -> None:
    call = _call()
    call.handle(i.LeadGone(cause=34, sip_code=503), T0 + 1)
    actions = call.handle(i.Stop(), T0 + 1)
    finished = _only(actions, a.Finished)
    assert isinstance(finished, a.Finished) and finished.record.outcome is CallOutcome.CANCELED
    assert not [x for x in actions if isinstance(x, a.HangupLead)]  # no leg is up
    assert call.handle(i.Rerouted("cmp-1-lead-2", "x", "carrier-b", "d-1", T0), T0 + 1) == []


def test_a_second_report_of_the_replaced_legs_end_does_not_end_the_retry() -> None:
    """Asterisk may report a leg's end twice; the retry's leg can be dialed in between."""
    call = _call()
    call.handle(i.LeadGone(cause=34, sip_code=503, channel_id="cmp-1-lead"), T0 + 0.4)
    call.handle(i.Rerouted("cmp-1-lead-2", "PJSIP/+12125551104@carrier-b", "carrier-b", "d-1", T0), T0 + 0.5)
    assert call.handle(i.LeadGone(cause=34, sip_code=503, channel_id="cmp-1-lead"), T0 + 0.51) == []
    assert call.state is CampaignCallState.DIALING and call.lead_channel == "cmp-1-lead-2"
    actions = call.handle(i.LeadGone(cause=17, sip_code=486, channel_id="cmp-1-lead-2"), T0 + 3)
    finished = _only(actions, a.Finished)
    assert isinstance(finished, a.Finished) and finished.record.outcome is CallOutcome.BUSY
