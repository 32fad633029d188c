"""One campaign (outbound, paced) call as a pure machine: dial, AMD, the 2-second connect,
the safe-harbor message, the machine answer. No IO; the runtime executes the actions.

The lead is originated into the dialplan context `dialer-amd`, which runs `AMD()` and then
enters the app with `amd,STATUS,CAUSE` (docs/decisions.md, decision 5). AMD declares a person only
after some silence following the greeting, and says how much (`HUMAN-<silence ms>-<limit ms>`),
so the greeting ended that long before the decision (`greeting_ended_at`; `greeting_end`).

- HUMAN (and NOTSURE: a person may be there) -> the call's bridge is made and recorded, then
  a ready agent joins it. 47 CFR 64.1200(a)(7): a person not connected to an agent within 2 s
  of the greeting's end is abandoned and must hear, within those 2 s, the seller's name, a
  number to call and an automated opt-out (press 9). So the machine waits for an agent only
  `agent_wait` seconds (default 1.5 s), then plays the safe-harbor message into the recorded
  bridge; the call counts as abandoned, and a 9 opts the number out at once.
- MACHINE -> hang up, or leave the campaign's message after the beep (dialplan).

Trunk failover: a dial the carrier refuses before the phone rings (503, congestion, a SIP
timeout; `dialer.provision.trunks.retry_step`) is the same call tried again on the next trunk
in preference order, on a new lead channel (`{call}-lead-2`, ...), under the same gate decision
while it is fresh, otherwise after the gate decided again. The call's row keeps the trunk that
carried it and every failed try with its cause.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from compliance_rules.telemarketing import CONNECT_LIMIT_SECONDS, MIN_RING_SECONDS
from crm_bridge.records import CallOutcome
from dialer.campaign.actions import (
    CallAction,
    CancelWant,
    ConnectAgent,
    Emit,
    Finished,
    HangupLead,
    LeaveMessage,
    Observe,
    OptOutNumber,
    OriginateLead,
    PlayRecordingNotice,
    PlaySafeHarbor,
    PrepareBridge,
    RerouteLead,
    ReturnAgent,
    TeardownBridge,
    WantAgent,
)
from dialer.campaign.inputs import (
    AgentAssigned,
    AgentJoined,
    AgentLeft,
    AmdDecided,
    BridgeFailed,
    BridgeReady,
    CallInput,
    Dial,
    DtmfReceived,
    HangupRequested,
    InboundAnswered,
    LeadAnswered,
    LeadGone,
    LeadRinging,
    Originated,
    OriginateFailed,
    PlaybackDone,
    Rerouted,
    RerouteFailed,
    Stop,
)
from dialer.campaign.record import CampaignCallRecord, CampaignCallState, MachineAction
from dialer.pacing.types import DialOutcome, EventKind
from dialer.provision.trunks import RetryStep, TrunkAttempt, retry_step
from dialer.runtime.causes import UNANSWERED_CAUSES


def greeting_end(status: str, cause: str, decided_at: float, answered_at: float) -> float:
    """When the called person's greeting ended, the instant the 2-second rule counts from.

    AMD says HUMAN once the greeting has been followed by `afterGreetingSilence` of silence;
    its cause `HUMAN-<silence ms>-<afterGreetingSilence ms>` gives that silence, so the greeting
    ended that long before the decision (never before the answer). Other decisions (NOTSURE
    after the analysis time ran out: the person may still be talking) carry no such measure,
    and the decision itself is the best the dialer knows.
    """
    parts = cause.split("-")
    if status != "HUMAN" or len(parts) != 3 or parts[0] != "HUMAN" or not parts[1].isdigit():
        return decided_at
    return max(answered_at, decided_at - int(parts[1]) / 1000.0)


@dataclass(frozen=True)
class CampaignCallRequest:
    call_id: str
    campaign_id: str
    lead_id: str
    phone: str
    caller_id: str
    decision_id: str
    ring_timeout: int = 20
    machine_action: MachineAction = MachineAction.HANGUP
    agent_wait: float = 1.5  # < CONNECT_LIMIT_SECONDS: the message must start within 2 s
    opt_out_wait: float = 4.0  # after the safe-harbor message, how long a 9 is still taken
    bridge_setup_timeout: float = 1.0
    end_timeout: float = 10.0  # hang-up sent but the lead's leg not yet gone
    machine_message_timeout: float = 90.0
    # Inbound: the caller waits (hold music) for a ready agent up to `max_hold` seconds; the
    # 2-second rule is about calls the dialer places, not calls it receives.
    inbound: bool = False
    max_hold: float = 300.0
    lead_channel_id: str | None = None  # inbound: the caller's channel, named by Asterisk
    lead_endpoint: str = ""  # outbound: the dial string through the trunk
    trunk: str = ""  # outbound: the trunk (PJSIP endpoint) of `lead_endpoint`
    trunks: int = 1  # outbound: trunks configured (a failed dial is tried on the next ones)
    decided_at: float = 0.0  # epoch seconds of the gate's decision `decision_id`
    amd_args: str = ""  # outbound: AMD()'s arguments (the campaign's settings; empty: amd.conf's)
    # The lead may be in an all-party-consent state (the gate's notice), or called in: the
    # recording is announced into the recorded bridge as the agent joins.
    recording_disclosure: bool = False

    def __post_init__(self) -> None:
        if self.ring_timeout < MIN_RING_SECONDS:
            raise ValueError(f"ring_timeout must be >= {MIN_RING_SECONDS} s (47 CFR 64.1200(a)(6))")
        if not 0 <= self.agent_wait < CONNECT_LIMIT_SECONDS:
            raise ValueError(f"agent_wait must be in [0, {CONNECT_LIMIT_SECONDS}) seconds")

    @property
    def lead_channel(self) -> str:
        return self.lead_channel_id or f"{self.call_id}-lead"

    @property
    def bridge_id(self) -> str:
        return f"{self.call_id}-bridge"

    @property
    def recording(self) -> str:
        return f"{self.call_id}-recording"

    @property
    def safe_harbor_playback(self) -> str:
        return f"{self.call_id}-safe-harbor"

    @property
    def recording_notice_playback(self) -> str:
        return f"{self.call_id}-recording-notice"


_DIAL_OUTCOMES: dict[CallOutcome, DialOutcome] = {
    CallOutcome.BUSY: DialOutcome.BUSY,
    CallOutcome.UNALLOCATED: DialOutcome.UNALLOCATED,
    CallOutcome.MACHINE: DialOutcome.MACHINE,
}

def unanswered_outcome(cause: int | None) -> CallOutcome:
    """The CRM outcome of a dial that ended before answer, from its Q.850 cause."""
    if cause is None or cause not in UNANSWERED_CAUSES:
        return CallOutcome.NO_ANSWER if cause in (None, 16, 0) else CallOutcome.FAILED
    return UNANSWERED_CAUSES[cause]


# ---- the machine --------------------------------------------------------------------------
class CampaignCall:
    """The machine of one campaign call. `handle(input, now)` and `handle_timer(now)` return
    the actions to execute in order; after `Finished` every input returns `[]`."""

    def __init__(self, request: CampaignCallRequest, now: float) -> None:
        self.request = request
        self.state = CampaignCallState.DIALING
        self.record = CampaignCallRecord(
            call_id=request.call_id, version=0, state=self.state, campaign_id=request.campaign_id,
            lead_id=request.lead_id, phone=request.phone, caller_id=request.caller_id,
            decision_id=request.decision_id, requested_at=now, inbound=request.inbound,
            trunk=request.trunk or None,
        )
        # The lead's current leg: a retry on another trunk is a new channel.
        self.lead_channel = request.lead_channel
        self._attempt = 1
        self._ringing = False
        self._rerouting = False
        self.decided_at = request.decided_at
        self._now = now
        self._deadline: float | None = now + request.ring_timeout + 30.0  # backstop; Asterisk decides first
        self._bridge_ready = False
        self._bridge_made = False
        self._agent_joined = False
        self._playback_done = False
        self._wanting = False
        self._agent_channel = ""
        self._outcome: CallOutcome | None = None
        self._dialed = False

    # -- helpers ------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        return self._deadline

    def _update(self, **changes: object) -> None:
        self.record = replace(self.record, **changes)  # type: ignore[arg-type]

    def _go(self, state: CampaignCallState, now: float, deadline: float | None = None) -> list[CallAction]:
        self.state = state
        self._deadline = deadline
        self._update(state=state, version=self.record.version + 1)
        return [Emit(self.record)]

    def _clock(self, now: float) -> float:
        self._now = max(self._now, now)
        return self._now

    # -- inputs --------------------------------------------------------------------------
    def handle(self, item: CallInput, now: float) -> list[CallAction]:
        now = self._clock(now)
        state = self.state
        if state is CampaignCallState.ENDED:
            return []
        match item:
            case Dial() if state is CampaignCallState.DIALING and not self.request.inbound and not self._dialed:
                self._dialed = True
                request = self.request
                return [OriginateLead(self.lead_channel, request.lead_endpoint, request.caller_id,
                                      request.ring_timeout, request.amd_args)]
            case Originated():
                # The pacer counts the call once, whatever the trunks it took.
                first = self._attempt == 1
                return [Observe(EventKind.DIAL_PLACED)] if state is CampaignCallState.DIALING and first else []
            case LeadRinging() if state is CampaignCallState.DIALING:
                self._ringing = True
                return []
            case Rerouted() if state is CampaignCallState.DIALING and self._rerouting:
                return self._redial(item, now)
            case RerouteFailed(reason=reason) if state is CampaignCallState.DIALING and self._rerouting:
                self._rerouting = False
                self._update(cause_text=f"{self.record.cause_text or 'carrier failure'}; not retried: {reason}")
                self._outcome = unanswered_outcome(self.record.cause)
                return self._finish(now)
            case OriginateFailed(reason=reason) if state is CampaignCallState.DIALING:
                self._update(cause_text=f"originate failed: {reason}")
                self._outcome = CallOutcome.FAILED
                return self._finish(now)
            case InboundAnswered() if state is CampaignCallState.DIALING and self.request.inbound:
                self._update(answered_at=now)
                self._bridge_made = True
                self._wanting = True
                actions = self._go(CampaignCallState.WAITING_AGENT, now, now + self.request.max_hold)
                return [*actions, PrepareBridge(self.request.bridge_id, self.request.recording,
                                                self.lead_channel), WantAgent()]
            case LeadAnswered() if state is CampaignCallState.DIALING and not self.request.inbound:
                self._update(answered_at=now)
                # AMD listens for at most its total analysis time (5 s) plus slack.
                return self._go(CampaignCallState.ANSWERED, now, now + 10.0)
            case AmdDecided(status=status, cause=cause) if state in (CampaignCallState.DIALING, CampaignCallState.ANSWERED):
                return self._amd(status, cause, now)
            case BridgeReady(recording=name) if state in (CampaignCallState.WAITING_AGENT, CampaignCallState.CONNECTING):
                self._bridge_ready = True
                self._update(recording=name)
                return self._maybe_connect()
            case BridgeFailed(reason=reason) if self._bridge_made and not self._bridge_ready:
                # Without a recorded bridge nobody may talk to the lead (recorded in their entirety,
                # 42 CFR 422.2274(g)(2)(ii)); the person is abandoned.
                self._update(cause_text=f"call bridge failed: {reason}")
                return self._hang_up(now, CallOutcome.ABANDONED)
            case AgentAssigned(agent_id=agent_id, agent_channel=channel) if state is CampaignCallState.WAITING_AGENT:
                self._wanting = False
                self._agent_channel = channel
                self._update(agent_id=agent_id)
                actions = self._go(CampaignCallState.CONNECTING, now, self._deadline)
                return actions + self._maybe_connect()
            case AgentJoined() if state is CampaignCallState.CONNECTING:
                self._agent_joined = True
                self._update(bridged_at=now)
                greeting = self.record.greeting_ended_at or now
                actions = [Observe(EventKind.CALL_BRIDGED, now - greeting), *self._go(CampaignCallState.BRIDGED, now)]
                if self.request.recording_disclosure:
                    actions.append(PlayRecordingNotice(self.request.bridge_id, self.request.recording_notice_playback))
                return actions
            case AgentLeft() if state in (CampaignCallState.CONNECTING, CampaignCallState.BRIDGED):
                self._update(cause_text="agent left the call")
                outcome = CallOutcome.ANSWERED if self._agent_joined else CallOutcome.ABANDONED
                self._agent_joined = False
                return self._hang_up(now, outcome, agent_gone=True)
            case PlaybackDone() if state is CampaignCallState.SAFE_HARBOR and not self._playback_done:
                self._playback_done = True
                self._deadline = now + self.request.opt_out_wait
                return []
            case DtmfReceived(digit="9") if state is CampaignCallState.SAFE_HARBOR and not self.record.opted_out:
                # 47 CFR 64.1200(a)(7)(i)(B): the key press adds the number to the do-not-call list at once.
                self._update(opted_out=True)
                request = self.request
                return [OptOutNumber(request.phone, request.lead_id, request.call_id),
                        *self._hang_up(now, CallOutcome.ABANDONED)]
            case LeadGone(cause=cause, sip_code=sip_code, text=text, channel_id=channel) if channel in (
                    None, self.lead_channel):
                # (A leg replaced by a trunk failover may be reported gone twice: only the current one counts.)
                self._update(cause=cause, sip_code=sip_code, cause_text=self.record.cause_text or text)
                if state is CampaignCallState.DIALING and self._dialed and not self.request.inbound:
                    step = retry_step(cause, sip_code, provisional=self._ringing,
                                      answered=self.record.answered_at is not None, attempts=self._attempt,
                                      trunks=self.request.trunks, decided_at=self.decided_at, now=now)
                    if step is not RetryStep.END:
                        return self._reroute(step, now)
                return self._lead_gone(now)
            case Stop() if state is CampaignCallState.DIALING and self._rerouting:
                # Between two trunks: no leg is up, nothing to hang up.
                self._rerouting = False
                self._update(cause_text="campaign stopped")
                self._outcome = CallOutcome.CANCELED
                return self._finish(now)
            case Stop() if state is CampaignCallState.DIALING:
                # Not answered yet: hanging up now abandons no one. An answered call still in
                # AMD may have a person on it: it finishes (agent, safe harbor or machine
                # handling), or hanging up would abandon that person (47 CFR 64.1200(a)(7)).
                self._update(cause_text="campaign stopped")
                return self._hang_up(now, CallOutcome.CANCELED)
            case HangupRequested(by=by) if state is not CampaignCallState.ENDING:
                self._update(cause_text=f"hung up by the {by}")
                return self._hang_up(now, self._requested_end_outcome())
        return []

    def _requested_end_outcome(self) -> CallOutcome:
        """How a call ended on request ends, by where it was: a person waiting for an agent or
        hearing the safe-harbor message is abandoned (47 CFR 64.1200(a)(7)); a bridged call was
        answered; a machine is a machine; a dial not yet judged by AMD is canceled."""
        match self.state:
            case CampaignCallState.BRIDGED:
                return CallOutcome.ANSWERED
            case CampaignCallState.MACHINE:
                return CallOutcome.MACHINE
            case CampaignCallState.WAITING_AGENT | CampaignCallState.CONNECTING | CampaignCallState.SAFE_HARBOR:
                return CallOutcome.ABANDONED
        return CallOutcome.CANCELED

    def _amd(self, status: str, cause: str, now: float) -> list[CallAction]:
        request = self.request
        if self.record.answered_at is None:
            self._update(answered_at=now)
        answered_at = self.record.answered_at
        greeting_ended = greeting_end(status, cause, now, now if answered_at is None else answered_at)
        self._update(amd_result=status, amd_cause=cause, greeting_ended_at=greeting_ended)
        since_dial = now - self.record.requested_at
        if status == "MACHINE":
            if request.machine_action is MachineAction.MESSAGE:
                # Every call is recorded, a voicemail drop too (the archive collects it at the end).
                self._update(message_left=True, recording=request.recording)
                actions = self._go(CampaignCallState.MACHINE, now, now + request.machine_message_timeout)
                return [*actions, LeaveMessage(self.lead_channel, request.recording)]
            actions = self._go(CampaignCallState.MACHINE, now, now + request.end_timeout)
            return [*actions, HangupLead(self.lead_channel)]
        if status == "HANGUP":
            return self._go(CampaignCallState.ANSWERED, now, now + request.end_timeout)
        # HUMAN or NOTSURE: treat as a person (a person may be there; the rule protects them).
        self._bridge_made = True
        self._wanting = True
        # The 2 s run from the greeting's end, already `now - greeting_ended` ago.
        actions = self._go(CampaignCallState.WAITING_AGENT, now, max(now, greeting_ended + request.agent_wait))
        return [
            Observe(EventKind.HUMAN_ANSWERED, since_dial, DialOutcome.HUMAN),
            *actions,
            PrepareBridge(request.bridge_id, request.recording, self.lead_channel),
            WantAgent(),
        ]

    def _maybe_connect(self) -> list[CallAction]:
        if self.state is CampaignCallState.CONNECTING and self._bridge_ready and self.record.agent_id:
            return [ConnectAgent(self.record.agent_id, self._agent_channel, self.request.bridge_id)]
        return []

    def handle_timer(self, now: float) -> list[CallAction]:
        now = self._clock(now)
        if self._deadline is None or now < self._deadline or self.state is CampaignCallState.ENDED:
            return []
        state = self.state
        request = self.request
        if state in (CampaignCallState.WAITING_AGENT, CampaignCallState.CONNECTING) and self.request.inbound:
            self._update(cause_text=f"no agent within {self.request.max_hold:g} s")
            return self._hang_up(now, CallOutcome.ABANDONED)
        if state in (CampaignCallState.WAITING_AGENT, CampaignCallState.CONNECTING):
            # No agent in time: 47 CFR 64.1200(a)(7)(i): the message within 2 s of the greeting.
            actions: list[CallAction] = []
            if self._wanting:
                self._wanting = False
                actions.append(CancelWant())
            if self.record.agent_id is not None and state is CampaignCallState.CONNECTING:
                actions.append(ReturnAgent(self.record.agent_id, joined=False))
                self._update(agent_id=None)
            if not self._bridge_ready:
                self._update(cause_text="the call bridge was not ready in time")
                return [*actions, *self._hang_up(now, CallOutcome.ABANDONED)]
            self._update(safe_harbor_played=True)
            actions += [Observe(EventKind.CALL_ABANDONED)]
            actions += self._go(CampaignCallState.SAFE_HARBOR, now, now + 60.0)
            return [*actions, PlaySafeHarbor(request.bridge_id, request.safe_harbor_playback)]
        if state is CampaignCallState.SAFE_HARBOR:
            return self._hang_up(now, CallOutcome.ABANDONED)
        if state is CampaignCallState.ENDING:
            # The leg never confirmed its end: finish anyway (its ChannelDestroyed is lost).
            return self._finish(now)
        if state is CampaignCallState.DIALING:
            return self._hang_up(now, CallOutcome.NO_ANSWER)
        return self._hang_up(now, self._pending_outcome(CallOutcome.FAILED))

    # -- ending ----------------------------------------------------------------------------
    def _pending_outcome(self, default: CallOutcome) -> CallOutcome:
        if self.state is CampaignCallState.MACHINE:
            return CallOutcome.MACHINE
        return default

    def _hang_up(self, now: float, outcome: CallOutcome, *, agent_gone: bool = False) -> list[CallAction]:
        self._outcome = outcome
        actions: list[CallAction] = []
        if self._wanting:
            self._wanting = False
            actions.append(CancelWant())
        if self.record.agent_id is not None and not agent_gone and not self._agent_joined:
            if self.state is CampaignCallState.CONNECTING:
                actions.append(ReturnAgent(self.record.agent_id, joined=False))
                self._update(agent_id=None)
        actions += self._go(CampaignCallState.ENDING, now, now + self.request.end_timeout)
        actions.append(HangupLead(self.lead_channel))
        return actions

    def _reroute(self, step: RetryStep, now: float) -> list[CallAction]:
        """The dial failed on its trunk before the phone rang: ask for the next trunk."""
        record = self.record
        failed = TrunkAttempt(record.trunk or "", record.cause, record.sip_code, now)
        self._update(trunk_attempts=(*record.trunk_attempts, failed), cause_text=None)
        self._rerouting = True
        actions = self._go(CampaignCallState.DIALING, now, now + self.request.ring_timeout + 30.0)
        request = self.request
        return [*actions, RerouteLead(request.call_id, request.phone, self._attempt + 1,
                                      tuple(attempt.trunk for attempt in self.record.trunk_attempts),
                                      step is RetryStep.ASK_GATE, failed.cause, failed.sip_code)]

    def _redial(self, rerouted: Rerouted, now: float) -> list[CallAction]:
        self._rerouting = False
        self._attempt += 1
        self._ringing = False
        self.lead_channel = rerouted.channel_id
        self.decided_at = rerouted.decided_at
        self._update(trunk=rerouted.trunk, decision_id=rerouted.decision_id, cause=None, sip_code=None)
        request = self.request
        actions = self._go(CampaignCallState.DIALING, now, now + request.ring_timeout + 30.0)
        return [*actions, OriginateLead(rerouted.channel_id, rerouted.endpoint, request.caller_id,
                                        request.ring_timeout, request.amd_args)]

    def _lead_gone(self, now: float) -> list[CallAction]:
        state = self.state
        if state is CampaignCallState.ENDING:
            return self._finish(now)
        if state is CampaignCallState.DIALING:
            self._outcome = unanswered_outcome(self.record.cause)
            return self._finish(now)
        if state is CampaignCallState.ANSWERED:
            # Hung up during the greeting, before AMD decided: not a live answer.
            self._outcome = CallOutcome.FAILED if self.record.amd_result is None else CallOutcome.ANSWERED
            return self._finish(now)
        if state is CampaignCallState.MACHINE:
            self._outcome = CallOutcome.MACHINE
            return self._finish(now)
        if state is CampaignCallState.BRIDGED:
            self._outcome = CallOutcome.ANSWERED
            return self._finish(now)
        # The person hung up while waiting for an agent or during the message: abandoned.
        self._outcome = CallOutcome.ABANDONED
        return self._finish(now)

    def _finish(self, now: float) -> list[CallAction]:
        outcome = self._outcome or CallOutcome.FAILED
        actions: list[CallAction] = []
        if self._wanting:
            self._wanting = False
            actions.append(CancelWant())
        agent_id = self.record.agent_id
        if agent_id is not None:
            actions.append(ReturnAgent(agent_id, joined=self._agent_joined))
        if self._bridge_made:
            actions.append(TeardownBridge(self.request.bridge_id, self.request.recording))
        if outcome is CallOutcome.ANSWERED and self.record.bridged_at is not None:
            actions.append(Observe(EventKind.TALK_ENDED, now - self.record.bridged_at))
        elif not self.record.live_answer and not self.request.inbound:
            dial = _DIAL_OUTCOMES.get(outcome, DialOutcome.NO_ANSWER)
            actions.append(Observe(EventKind.DIAL_ENDED, now - self.record.requested_at, dial))
        self._update(ended_at=now, outcome=outcome)
        actions += self._go(CampaignCallState.ENDED, now)
        actions.append(Finished(self.record))
        return actions

