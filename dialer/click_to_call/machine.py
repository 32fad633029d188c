"""The click-to-call call as a pure state machine: inputs and `now` in, actions out.

One `CallMachine` per call. It never touches a socket or a clock (in the style of aioquic's
`QuicConnection`): `handle(event, now)` and `handle_timer(now)` return the actions the runtime
must execute, in order, and `next_timer()` says when to call `handle_timer` next.

The flow (docs/calls.md): the agent's softphone rings first; when it answers, a per-call
mixing bridge is made, the agent joins it and its recording starts; only once the recording is
confirmed started is the compliance gate asked again, and only if it allows is the lead
dialed; on answer the lead joins the bridge. Either hang-up tears everything down.

Events from Asterisk arrive late, twice or out of order (there is no ordering between a REST
response and the events it causes), so an input that does not fit the current state is
ignored and logged, never an error. Only a misuse of the API (starting a call twice) raises
`InvalidStateError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from compliance_rules.telemarketing import MIN_RING_SECONDS
from dialer.click_to_call.actions import (
    AddToBridge,
    CallAction,
    CallIds,
    CheckGate,
    CreateBridge,
    DestroyBridge,
    DialLead,
    Emit,
    Finished,
    HangupChannel,
    OriginateAgent,
    PlayRecordingNotice,
    RerouteLead,
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
    CallInput,
    GateDecided,
    HangupRequested,
    LeadAnswered,
    LeadHungUp,
    LeadJoined,
    LeadRinging,
    Leg,
    OriginateFailed,
    RecordingFailed,
    RecordingStarted,
    Rerouted,
    RerouteFailed,
    Start,
)
from dialer.click_to_call.record import (
    CallRecord,
    CallState,
    ClickToCallOutcome,
    agent_outcome_for_cause,
    lead_outcome_for_cause,
)
from dialer.provision.trunks import RetryStep, TrunkAttempt, retry_step, trunk_of
from dialer.runtime.causes import utc
from dialer.runtime.errors import InvalidStateError

log = logging.getLogger(__name__)

# The lead rings at least this long (47 CFR 64.1200(a)(6)).
MIN_LEAD_RING_SECONDS: Final = float(MIN_RING_SECONDS)

# States in which the call is live (between Start and the outcome being known).
_LIVE_STATES: Final = frozenset(
    {
        CallState.AGENT_RINGING,
        CallState.AGENT_ANSWERED,
        CallState.GATE_RECHECK,
        CallState.LEAD_RINGING,
        CallState.LEAD_ANSWERED,
        CallState.BRIDGED,
    }
)
# Agent hung up after answering, before the lead answered.
_BEFORE_LEAD_ANSWER: Final = frozenset(
    {CallState.AGENT_ANSWERED, CallState.GATE_RECHECK, CallState.LEAD_RINGING}
)


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    """Time budgets of one call, in seconds.

    `lead_ring` is the configured dial timeout; the machine never uses less than 15 s. The
    machine's own ring timers fire `backstop_slack` after the timeouts given to Asterisk, so
    Asterisk's answer (cause 19) normally wins and the backstop only covers lost events.
    """

    agent_ring: float = 30.0
    lead_ring: float = 25.0
    recording_start: float = 5.0
    """From the agent's answer until the recording is confirmed (bridge creation included)."""
    gate_decision: float = 3.0
    """Waiting for the gate's recheck; past it the call is blocked (fail closed)."""
    lead_join: float = 5.0
    """From the lead's answer until it is in the bridge."""
    teardown: float = 10.0
    """From the outcome until every leg is confirmed gone; past it the call ends anyway."""
    asterisk_grace: float = 30.0
    """How long a call survives a lost Asterisk connection before it ends as `asterisk_lost`."""
    backstop_slack: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "agent_ring",
            "lead_ring",
            "recording_start",
            "gate_decision",
            "lead_join",
            "teardown",
            "asterisk_grace",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"CallTimeouts.{name} must be a positive number of seconds, got {value!r}")
        if not self.backstop_slack >= 0:
            raise ValueError(f"CallTimeouts.backstop_slack must be >= 0, got {self.backstop_slack!r}")

    @property
    def effective_lead_ring(self) -> float:
        """The dial timeout given to Asterisk: the configured one, never below 15 s."""
        return max(MIN_LEAD_RING_SECONDS, self.lead_ring)


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What the CRM (or console) asked for, after the gate allowed it.

    `lead_endpoint` is the dial string for the lead (e.g. `PJSIP/+15555550123@trunk`),
    `agent_endpoint` the agent's softphone (e.g. `PJSIP/agent1001`), `caller_id` the
    campaign's caller ID, `gate_decision_id` the id of the decision that allowed the request.
    """

    call_id: str
    lead_id: str
    agent_id: str
    lead_number: str
    lead_endpoint: str
    agent_endpoint: str
    caller_id: str
    campaign_id: str | None = None
    gate_decision_id: str | None = None
    lead_name: str | None = None
    """How the agent's phone names the lead (None: its number)."""
    trunks: int = 1
    """Carrier trunks configured: a dial refused before ringing is retried on the next one
    (`dialer.runtime.failover`), at most this many tries in all."""

    def __post_init__(self) -> None:
        for name in ("call_id", "lead_id", "agent_id", "lead_number", "lead_endpoint", "agent_endpoint"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"CallRequest.{name} must be a non-empty string, got {value!r}")


class _Timer(StrEnum):
    AGENT_RING = "agent_ring"
    RECORDING_START = "recording_start"
    GATE_DECISION = "gate_decision"
    LEAD_RING = "lead_ring"
    LEAD_JOIN = "lead_join"
    TEARDOWN = "teardown"


class CallMachine:
    """One click-to-call call: `handle(event, now)`, `handle_timer(now)`, `next_timer()`.

    `now` is epoch seconds (float). A `now` earlier than one already seen is taken as the
    latest seen, so a wall clock stepped back cannot make a duration negative.
    """

    def __init__(
        self, request: CallRequest, requested_at: float, timeouts: CallTimeouts | None = None
    ) -> None:
        self.request = request
        self.timeouts = timeouts if timeouts is not None else CallTimeouts()
        self.ids = CallIds(request.call_id)
        self._state = CallState.REQUESTED
        self._now = requested_at
        self._version = 0
        self._state_timer: tuple[_Timer, float] | None = None
        self._grace_deadline: float | None = None

        self._agent_originated = False
        self._agent_live = False
        self._lead_originated = False
        self._lead_live = False
        self._bridge_requested = False
        self._bridge_ready = False
        self._recording_requested = False
        self._recording_started = False

        self._requested_at = requested_at
        self._agent_ringing_at: float | None = None
        self._agent_answered_at: float | None = None
        self._recording_started_at: float | None = None
        self._lead_dialed_at: float | None = None
        self._lead_ringing_at: float | None = None
        self._lead_answered_at: float | None = None
        self._bridged_at: float | None = None
        self._ended_at: float | None = None

        self._outcome: ClickToCallOutcome | None = None
        self._ended_by: str | None = None
        self._detail: str | None = None
        self._problem: str | None = None
        self._lead_cause: int | None = None
        self._lead_cause_text: str | None = None
        self._lead_sip_code: int | None = None
        self._agent_cause: int | None = None
        self._agent_sip_code: int | None = None
        self._recheck_decision_id: str | None = None
        self._gate_reasons: tuple[str, ...] = ()
        self._recording_disclosure = False
        # Trunk failover (docs/calls.md): the lead's current dial string and try, the failed tries.
        self._lead_endpoint = request.lead_endpoint
        self._trunk_attempts: tuple[TrunkAttempt, ...] = ()
        self._rerouting = False
        self._decided_at: float | None = None  # when the recheck allowed the dial

    # -- public API -------------------------------------------------------------------------

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def decided_at(self) -> float:
        """When the gate's decision the lead is dialed under was taken (its recheck, or a renewal)."""
        return self._decided_at if self._decided_at is not None else self._requested_at

    @property
    def outcome(self) -> ClickToCallOutcome | None:
        return self._outcome

    @property
    def record(self) -> CallRecord:
        """The current snapshot (the one the last `Emit` carried, or the initial one)."""
        return self._snapshot()

    def next_timer(self) -> float | None:
        """When `handle_timer` must next be called (epoch seconds), or None."""
        deadlines = [d for d in (self._state_deadline(), self._grace_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle(self, event: CallInput, now: float) -> list[CallAction]:
        """Apply one input at `now`; return the actions to execute, in order."""
        now = self._clock(now)
        actions: list[CallAction] = []
        if isinstance(event, Start):
            self._start(now, actions)
            return actions
        if self._state is CallState.ENDED:
            log.debug("call %s: %s ignored, the call has ended", self.request.call_id, type(event).__name__)
            return actions
        match event:
            case AgentRinging():
                if self._state is CallState.AGENT_RINGING and self._agent_ringing_at is None:
                    self._agent_ringing_at = now
            case AgentAnswered():
                self._on_agent_answered(now, actions)
            case AgentHungUp():
                self._on_agent_hung_up(event, now, actions)
            case BridgeCreated():
                self._on_bridge_created(now, actions)
            case BridgeFailed():
                # The bridge stays in the teardown: a request that timed out may still have made it.
                if self._state is CallState.AGENT_ANSWERED and not self._bridge_ready:
                    self._end(ClickToCallOutcome.RECORDING_FAILED, now, actions, "system", f"bridge: {event.reason}")
            case RecordingStarted():
                self._on_recording_started(event, now, actions)
            case RecordingFailed():
                self._on_recording_failed(event, now, actions)
            case GateDecided():
                self._on_gate_decided(event, now, actions)
            case LeadRinging():
                if self._state is CallState.LEAD_RINGING and self._lead_ringing_at is None:
                    self._lead_ringing_at = now
            case LeadAnswered():
                self._on_lead_answered(now, actions)
            case LeadJoined():
                if self._state is CallState.LEAD_ANSWERED:
                    self._bridged_at = now
                    self._set_state(CallState.BRIDGED, now, actions)
                    if self._recording_disclosure:
                        actions.append(PlayRecordingNotice(self.ids.bridge, self.ids.recording_notice))
            case LeadHungUp():
                self._on_lead_hung_up(event, now, actions)
            case HangupRequested():
                self._on_hangup_requested(event, now, actions)
            case AsteriskLost():
                self._on_asterisk_lost(now, actions)
            case AsteriskReconciled():
                self._on_asterisk_reconciled(event, now, actions)
            case OriginateFailed():
                self._on_originate_failed(event, now, actions)
            case Rerouted():
                self._on_rerouted(event, now, actions)
            case RerouteFailed(reason=reason):
                if self._state is CallState.LEAD_RINGING and self._rerouting:
                    self._rerouting = False
                    outcome = lead_outcome_for_cause(self._lead_cause, dial_timed_out=False)
                    self._end(outcome, now, actions, "lead", f"not retried on another trunk: {reason}")
        if not actions:
            log.debug(
                "call %s: %s in %s: nothing to do", self.request.call_id, type(event).__name__, self._state
            )
        return actions

    def handle_timer(self, now: float) -> list[CallAction]:
        """Fire every timer due at `now`; return the actions to execute, in order."""
        now = self._clock(now)
        actions: list[CallAction] = []
        while self._state is not CallState.ENDED:
            state_deadline = self._state_deadline()
            grace = self._grace_deadline
            due = [d for d in (state_deadline, grace) if d is not None and d <= now]
            if not due:
                break
            if grace is not None and grace == min(due):
                self._grace_deadline = None
                self._end(ClickToCallOutcome.ASTERISK_LOST, now, actions, "system", "Asterisk connection lost")
            else:
                assert self._state_timer is not None
                timer = self._state_timer[0]
                self._state_timer = None
                self._fire(timer, now, actions)
        return actions

    # -- transitions ------------------------------------------------------------------------

    def _set_state(self, new: CallState, now: float, actions: list[CallAction]) -> None:
        """The one transition point: logs old -> new, drops the old state's timer, emits a snapshot."""
        old = self._state
        log.debug("call %s: %s -> %s", self.request.call_id, old.value, new.value)
        self._state = new
        self._state_timer = None
        if new is CallState.ENDED:
            self._grace_deadline = None
        self._version += 1
        snapshot = self._snapshot()
        actions.append(Emit(snapshot))
        if new is CallState.ENDED:
            assert self._outcome is not None
            actions.append(Finished(self._outcome, snapshot))

    def _arm(self, timer: _Timer, deadline: float) -> None:
        self._state_timer = (timer, deadline)

    def _state_deadline(self) -> float | None:
        return self._state_timer[1] if self._state_timer is not None else None

    def _start(self, now: float, actions: list[CallAction]) -> None:
        if self._state is not CallState.REQUESTED:
            raise InvalidStateError(f"cannot start the call: the call is {self._state.value}",
                                    state=self._state, operation="start the call")
        request = self.request
        self._agent_originated = self._agent_live = True
        # The console gets the lead record and call id now, long before the lead answers.
        actions.append(
            ScreenPop(
                call_id=request.call_id,
                agent_id=request.agent_id,
                lead_id=request.lead_id,
                campaign_id=request.campaign_id,
                lead_number=request.lead_number,
            )
        )
        actions.append(
            OriginateAgent(self.ids.agent_channel, request.agent_endpoint, self.timeouts.agent_ring,
                           caller_name=request.lead_name or request.lead_number, caller_number=request.lead_number)
        )
        self._set_state(CallState.AGENT_RINGING, now, actions)
        self._arm(_Timer.AGENT_RING, now + self.timeouts.agent_ring + self.timeouts.backstop_slack)

    def _on_agent_answered(self, now: float, actions: list[CallAction]) -> None:
        if self._state is not CallState.AGENT_RINGING:
            return
        self._agent_answered_at = now
        self._bridge_requested = True
        actions.append(CreateBridge(self.ids.bridge))
        self._set_state(CallState.AGENT_ANSWERED, now, actions)
        self._arm(_Timer.RECORDING_START, now + self.timeouts.recording_start)

    def _on_bridge_created(self, now: float, actions: list[CallAction]) -> None:
        if self._state is not CallState.AGENT_ANSWERED or self._bridge_ready:
            return
        self._bridge_ready = True
        self._recording_requested = True
        actions.append(AddToBridge(self.ids.bridge, self.ids.agent_channel))
        # Record the bridge, not the channel: a bridged channel cannot be recorded (design 6).
        actions.append(StartRecording(self.ids.bridge, self.ids.recording))

    def _on_recording_started(self, event: RecordingStarted, now: float, actions: list[CallAction]) -> None:
        if event.name != self.ids.recording:
            log.warning(
                "call %s: RecordingStarted for unknown recording %r", self.request.call_id, event.name
            )
            return
        if self._state is not CallState.AGENT_ANSWERED or not self._recording_requested:
            return
        self._recording_started = True
        self._recording_started_at = now
        request = self.request
        actions.append(CheckGate(request.call_id, request.lead_id, request.lead_number, request.campaign_id))
        self._set_state(CallState.GATE_RECHECK, now, actions)
        self._arm(_Timer.GATE_DECISION, now + self.timeouts.gate_decision)

    def _on_recording_failed(self, event: RecordingFailed, now: float, actions: list[CallAction]) -> None:
        if self._state not in _LIVE_STATES or not self._recording_requested:
            return
        # "A call that cannot be recorded is not connected": CMS requires marketing, sales and
        # enrollment calls to be recorded in their entirety (42 CFR 422.2274(g)(2)(ii)), so a
        # failure ends the call at any stage, and before the lead is dialed it is never dialed.
        self._recording_requested = False
        self._recording_started = False
        self._end(ClickToCallOutcome.RECORDING_FAILED, now, actions, "system", f"recording: {event.reason}")

    def _on_gate_decided(self, event: GateDecided, now: float, actions: list[CallAction]) -> None:
        if self._state is not CallState.GATE_RECHECK:
            return
        self._recheck_decision_id = event.decision_id
        self._recording_disclosure = event.recording_disclosure
        self._decided_at = now
        if not event.allowed:
            self._gate_reasons = event.reasons
            detail = (
                "blocked at recheck: " + ", ".join(event.reasons) if event.reasons else "blocked at recheck"
            )
            self._end(ClickToCallOutcome.COMPLIANCE_BLOCKED, now, actions, "system", detail)
            return
        timeout = self.timeouts.effective_lead_ring
        self._lead_originated = self._lead_live = True
        self._lead_dialed_at = now
        request = self.request
        actions.append(DialLead(self.ids.lead_channel, request.lead_endpoint, request.caller_id, timeout))
        self._set_state(CallState.LEAD_RINGING, now, actions)
        self._arm(_Timer.LEAD_RING, now + timeout + self.timeouts.backstop_slack)

    def _on_lead_answered(self, now: float, actions: list[CallAction]) -> None:
        if self._state is not CallState.LEAD_RINGING:
            return
        self._lead_answered_at = now
        actions.append(AddToBridge(self.ids.bridge, self.ids.lead_channel))
        self._set_state(CallState.LEAD_ANSWERED, now, actions)
        self._arm(_Timer.LEAD_JOIN, now + self.timeouts.lead_join)

    def _on_agent_hung_up(self, event: AgentHungUp, now: float, actions: list[CallAction]) -> None:
        if not self._agent_live:
            return
        self._agent_live = False
        self._agent_cause, self._agent_sip_code = event.cause, event.sip_code
        state = self._state
        if state is CallState.AGENT_RINGING:
            self._end(agent_outcome_for_cause(event.cause), now, actions, "agent")
        elif state in _BEFORE_LEAD_ANSWER:
            self._end(ClickToCallOutcome.AGENT_HUNG_UP_BEFORE_LEAD, now, actions, "agent")
        elif state is CallState.LEAD_ANSWERED:
            self._end(ClickToCallOutcome.AGENT_HUNG_UP, now, actions, "agent")
        elif state is CallState.BRIDGED:
            self._end(ClickToCallOutcome.COMPLETED, now, actions, "agent")
        else:
            self._maybe_finish(now, actions)

    def _on_lead_hung_up(self, event: LeadHungUp, now: float, actions: list[CallAction]) -> None:
        if not self._lead_live or event.channel_id not in (None, self.ids.lead_channel):
            return
        self._lead_live = False
        self._lead_cause, self._lead_cause_text = event.cause, event.cause_text
        self._lead_sip_code = event.sip_code
        state = self._state
        if state is CallState.LEAD_RINGING:
            assert self._lead_dialed_at is not None
            step = retry_step(event.cause, event.sip_code, provisional=self._lead_ringing_at is not None,
                              answered=False, attempts=self.ids.lead_attempt, trunks=self.request.trunks,
                              decided_at=self._decided_at if self._decided_at is not None else self._lead_dialed_at,
                              now=now)
            if step is not RetryStep.END:
                self._reroute(step, event, now, actions)
                return
            timed_out = now - self._lead_dialed_at >= self.timeouts.effective_lead_ring
            self._end(lead_outcome_for_cause(event.cause, dial_timed_out=timed_out), now, actions, "lead")
        elif state is CallState.LEAD_ANSWERED:
            self._end(ClickToCallOutcome.LEAD_HUNG_UP, now, actions, "lead")
        elif state is CallState.BRIDGED:
            self._end(ClickToCallOutcome.COMPLETED, now, actions, "lead")
        else:
            self._maybe_finish(now, actions)

    def _reroute(self, step: RetryStep, event: LeadHungUp, now: float, actions: list[CallAction]) -> None:
        """The carrier refused the dial before the phone rang (503, a timeout): the same call on
        the next trunk, the agent waiting on hold in the recorded bridge meanwhile."""
        failed = TrunkAttempt(trunk_of(self._lead_endpoint), event.cause, event.sip_code, now)
        self._trunk_attempts = (*self._trunk_attempts, failed)
        self._rerouting = True
        request = self.request
        actions.append(RerouteLead(request.call_id, request.lead_number, self.ids.lead_attempt + 1,
                                   tuple(attempt.trunk for attempt in self._trunk_attempts),
                                   step is RetryStep.ASK_GATE, event.cause, event.sip_code))

    def _on_rerouted(self, event: Rerouted, now: float, actions: list[CallAction]) -> None:
        if self._state is not CallState.LEAD_RINGING or not self._rerouting:
            return
        self._rerouting = False
        self.ids = replace(self.ids, lead_attempt=self.ids.lead_attempt + 1)
        if self.ids.lead_channel != event.channel_id:
            # Not this machine's next leg (a stale answer): fail the try rather than lose the channel.
            self._end(ClickToCallOutcome.LEAD_FAILED, now, actions, "system", f"unexpected leg {event.channel_id}")
            return
        self._lead_endpoint = event.endpoint
        self._recheck_decision_id = event.decision_id
        self._decided_at = event.decided_at
        self._lead_cause = self._lead_cause_text = self._lead_sip_code = None
        self._lead_ringing_at = None
        self._lead_originated = self._lead_live = True
        self._lead_dialed_at = now
        timeout = self.timeouts.effective_lead_ring
        actions.append(DialLead(self.ids.lead_channel, event.endpoint, self.request.caller_id, timeout))
        self._arm(_Timer.LEAD_RING, now + timeout + self.timeouts.backstop_slack)

    def _on_hangup_requested(self, event: HangupRequested, now: float, actions: list[CallAction]) -> None:
        if self._state is CallState.ENDING:
            return
        outcome = ClickToCallOutcome.COMPLETED if self._state is CallState.BRIDGED else ClickToCallOutcome.CANCELLED
        self._end(outcome, now, actions, event.by.value)

    def _on_asterisk_lost(self, now: float, actions: list[CallAction]) -> None:
        if self._state is CallState.REQUESTED:
            # Nothing exists in Asterisk yet, and nothing can be originated without it.
            self._end(ClickToCallOutcome.ASTERISK_LOST, now, actions, "system", "Asterisk connection lost")
        elif self._state in _LIVE_STATES and self._grace_deadline is None:
            self._grace_deadline = now + self.timeouts.asterisk_grace

    def _on_asterisk_reconciled(
        self, event: AsteriskReconciled, now: float, actions: list[CallAction]
    ) -> None:
        if self._state is CallState.REQUESTED:
            return
        lost = []
        if self._agent_live and self.ids.agent_channel not in event.live_channel_ids:
            self._agent_live = False
            lost.append(Leg.AGENT.value)
        if self._lead_live and self.ids.lead_channel not in event.live_channel_ids:
            self._lead_live = False
            lost.append(Leg.LEAD.value)
        if self._state is CallState.ENDING:
            self._maybe_finish(now, actions)
        elif lost:
            detail = "gone after reconnect: " + ", ".join(lost)
            self._end(ClickToCallOutcome.ASTERISK_LOST, now, actions, "system", detail)
        else:
            self._grace_deadline = None

    def _on_originate_failed(self, event: OriginateFailed, now: float, actions: list[CallAction]) -> None:
        if event.leg is Leg.AGENT and self._agent_live:
            self._agent_live = False
            if self._state is CallState.AGENT_RINGING:
                self._problem = event.problem
                self._end(ClickToCallOutcome.ORIGINATE_FAILED, now, actions, "system", f"agent leg: {event.reason}")
            else:
                self._maybe_finish(now, actions)
        elif event.leg is Leg.LEAD and self._lead_live:
            self._lead_live = False
            if self._state is CallState.LEAD_RINGING:
                self._end(ClickToCallOutcome.ORIGINATE_FAILED, now, actions, "system", f"lead leg: {event.reason}")
            else:
                self._maybe_finish(now, actions)

    def _fire(self, timer: _Timer, now: float, actions: list[CallAction]) -> None:
        if timer is _Timer.AGENT_RING:
            self._end(ClickToCallOutcome.AGENT_NO_ANSWER, now, actions, "timeout", "agent ring timeout")
        elif timer is _Timer.RECORDING_START:
            detail = f"recording not confirmed within {self.timeouts.recording_start:g} s"
            self._end(ClickToCallOutcome.RECORDING_FAILED, now, actions, "timeout", detail)
        elif timer is _Timer.GATE_DECISION:
            # Fail closed: no decision is no permission to dial.
            detail = f"no gate decision within {self.timeouts.gate_decision:g} s"
            self._end(ClickToCallOutcome.COMPLIANCE_BLOCKED, now, actions, "timeout", detail)
        elif timer is _Timer.LEAD_RING:
            self._end(ClickToCallOutcome.LEAD_NO_ANSWER, now, actions, "timeout", "lead ring backstop", "no_answer")
        elif timer is _Timer.LEAD_JOIN:
            detail = f"lead not in the bridge within {self.timeouts.lead_join:g} s"
            self._end(ClickToCallOutcome.LEAD_FAILED, now, actions, "timeout", detail)
        elif timer is _Timer.TEARDOWN:
            self._agent_live = self._lead_live = False
            self._set_state(CallState.ENDED, now, actions)

    def _end(
        self,
        outcome: ClickToCallOutcome,
        now: float,
        actions: list[CallAction],
        ended_by: str,
        detail: str | None = None,
        hangup_reason: str = "normal",
    ) -> None:
        """Fix the outcome and tear down: hang up live legs, stop recording, destroy the bridge."""
        if self._state in (CallState.ENDING, CallState.ENDED):
            return
        self._outcome = outcome
        self._ended_at = now
        self._ended_by = ended_by
        self._detail = detail
        self._grace_deadline = None
        self._set_state(CallState.ENDING, now, actions)
        if self._lead_live:
            actions.append(HangupChannel(self.ids.lead_channel, hangup_reason))
        if self._agent_live:
            actions.append(HangupChannel(self.ids.agent_channel, "normal"))
        if self._recording_requested:
            actions.append(StopRecording(self.ids.recording))
        if self._bridge_requested:
            actions.append(DestroyBridge(self.ids.bridge))
        self._arm(_Timer.TEARDOWN, now + self.timeouts.teardown)
        self._maybe_finish(now, actions)

    def _maybe_finish(self, now: float, actions: list[CallAction]) -> None:
        if self._state is CallState.ENDING and not self._agent_live and not self._lead_live:
            self._set_state(CallState.ENDED, now, actions)

    # -- helpers ----------------------------------------------------------------------------

    def _clock(self, now: float) -> float:
        if now < self._now:
            return self._now
        self._now = now
        return now

    def _snapshot(self) -> CallRecord:
        request = self.request
        ring_seconds: float | None = None
        if self._lead_dialed_at is not None:
            ring_end = self._lead_answered_at if self._lead_answered_at is not None else self._ended_at
            if ring_end is not None:
                ring_seconds = _seconds(ring_end - self._lead_dialed_at)
        talk_seconds: float | None = None
        total_seconds: float | None = None
        if self._ended_at is not None:
            bridged = self._bridged_at
            talk_seconds = _seconds(self._ended_at - bridged) if bridged is not None else 0.0
            total_seconds = _seconds(self._ended_at - self._requested_at)
        return CallRecord(
            call_id=request.call_id,
            version=self._version,
            state=self._state,
            lead_id=request.lead_id,
            agent_id=request.agent_id,
            campaign_id=request.campaign_id,
            lead_number=request.lead_number,
            agent_endpoint=request.agent_endpoint,
            caller_id=request.caller_id,
            trunk=trunk_of(self._lead_endpoint) or None,
            trunk_attempts=self._trunk_attempts,
            lead_ring_timeout=self.timeouts.effective_lead_ring,
            requested_at=utc(self._requested_at),
            agent_ringing_at=_utc_or_none(self._agent_ringing_at),
            agent_answered_at=_utc_or_none(self._agent_answered_at),
            recording_started_at=_utc_or_none(self._recording_started_at),
            lead_dialed_at=_utc_or_none(self._lead_dialed_at),
            lead_ringing_at=_utc_or_none(self._lead_ringing_at),
            lead_answered_at=_utc_or_none(self._lead_answered_at),
            bridged_at=_utc_or_none(self._bridged_at),
            ended_at=_utc_or_none(self._ended_at),
            outcome=self._outcome,
            ended_by=self._ended_by,
            detail=self._detail,
            problem=self._problem,
            lead_hangup_cause=self._lead_cause,
            lead_hangup_cause_text=self._lead_cause_text,
            lead_sip_code=self._lead_sip_code,
            agent_hangup_cause=self._agent_cause,
            agent_sip_code=self._agent_sip_code,
            ring_seconds=ring_seconds,
            talk_seconds=talk_seconds,
            total_seconds=total_seconds,
            recording_name=self.ids.recording if self._recording_started_at is not None else None,
            gate_decision_id=request.gate_decision_id,
            recheck_decision_id=self._recheck_decision_id,
            gate_reasons=self._gate_reasons,
        )


def _utc_or_none(epoch: float | None) -> datetime | None:
    return utc(epoch) if epoch is not None else None


def _seconds(value: float) -> float:
    # Rounded to the millisecond so float noise from epoch arithmetic does not reach the CRM.
    return round(max(0.0, value), 3)
