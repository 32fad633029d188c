"""The click-to-call call's state, outcome and record snapshot. Pure.

`CallRecord` is the frozen snapshot the machine emits on every state change (`Emit`): the
runtime writes it to the CRM `calls` row through the outbox and pushes it to the agent's
WebSocket. `version` grows with every snapshot of a call, so the outbox keeps the latest.
`to_crm_call()` gives the dict the CRM bridge's `call` record kind expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from crm_bridge.records import CallOutcome
from dialer.provision.trunks import TrunkAttempt
from dialer.runtime.causes import UNANSWERED_CAUSES


class CallState(StrEnum):
    """Where a click-to-call call is; persisted in snapshots."""

    REQUESTED = "requested"
    AGENT_RINGING = "agent_ringing"
    AGENT_ANSWERED = "agent_answered"
    """Agent up; the bridge is being made and its recording started."""
    GATE_RECHECK = "gate_recheck"
    LEAD_RINGING = "lead_ringing"
    """The lead is being dialed (from the dial request, ringing or not yet)."""
    LEAD_ANSWERED = "lead_answered"
    """The lead answered and is being added to the bridge."""
    BRIDGED = "bridged"
    ENDING = "ending"
    """The outcome is known; legs are being hung up and the bridge destroyed."""
    ENDED = "ended"


class ClickToCallOutcome(StrEnum):
    """How a click-to-call call ended (finer than the CRM's `calls.outcome`)."""

    COMPLETED = "completed"
    """Agent and lead were bridged; `ended_by` says who ended it."""
    LEAD_BUSY = "lead_busy"
    LEAD_NO_ANSWER = "lead_no_answer"
    LEAD_UNALLOCATED = "lead_unallocated"
    LEAD_CONGESTION = "lead_congestion"
    LEAD_REJECTED = "lead_rejected"
    LEAD_FAILED = "lead_failed"
    """The lead leg failed for another cause, or answered but could not be bridged."""
    AGENT_NO_ANSWER = "agent_no_answer"
    AGENT_BUSY = "agent_busy"
    AGENT_HUNG_UP_BEFORE_LEAD = "agent_hung_up_before_lead"
    """The agent hung up after answering, before the lead answered."""
    LEAD_HUNG_UP = "lead_hung_up"
    """The lead answered and hung up before joining the bridge."""
    AGENT_HUNG_UP = "agent_hung_up"
    """The lead answered, and the agent hung up before the lead joined the bridge."""
    RECORDING_FAILED = "recording_failed"
    COMPLIANCE_BLOCKED = "compliance_blocked"
    CANCELLED = "cancelled"
    ASTERISK_LOST = "asterisk_lost"
    ORIGINATE_FAILED = "originate_failed"


# Q.850 cause -> outcome of an unanswered lead leg (`dialer.runtime.causes`), in this
# machine's finer terms.
LEAD_CAUSE_OUTCOMES: Final[dict[int, ClickToCallOutcome]] = {
    cause: {
        CallOutcome.BUSY: ClickToCallOutcome.LEAD_BUSY,
        CallOutcome.NO_ANSWER: ClickToCallOutcome.LEAD_NO_ANSWER,
        CallOutcome.UNALLOCATED: ClickToCallOutcome.LEAD_UNALLOCATED,
        CallOutcome.CONGESTION: ClickToCallOutcome.LEAD_CONGESTION,
        CallOutcome.REJECTED: ClickToCallOutcome.LEAD_REJECTED,
    }[outcome]
    for cause, outcome in UNANSWERED_CAUSES.items()
}

# Q.850 cause -> outcome of an agent leg that was never answered; anything else is no answer.
AGENT_CAUSE_OUTCOMES: Final[dict[int, ClickToCallOutcome]] = {
    17: ClickToCallOutcome.AGENT_BUSY,
    21: ClickToCallOutcome.AGENT_BUSY,  # the agent declined the call
}


def lead_outcome_for_cause(cause: int | None, *, dial_timed_out: bool) -> ClickToCallOutcome:
    """The outcome of a lead leg that ended before answering, from its Q.850 cause.

    A cause the table does not know means no answer if the dial timeout had passed (some
    trunks clear a timed-out call with cause 16 or 0), otherwise a failed leg.
    """
    if cause is not None and cause in LEAD_CAUSE_OUTCOMES:
        return LEAD_CAUSE_OUTCOMES[cause]
    return ClickToCallOutcome.LEAD_NO_ANSWER if dial_timed_out else ClickToCallOutcome.LEAD_FAILED


def agent_outcome_for_cause(cause: int | None) -> ClickToCallOutcome:
    """The outcome of an agent leg that ended before answering, from its Q.850 cause."""
    if cause is not None and cause in AGENT_CAUSE_OUTCOMES:
        return AGENT_CAUSE_OUTCOMES[cause]
    return ClickToCallOutcome.AGENT_NO_ANSWER


_CRM_OUTCOMES: Final[dict[ClickToCallOutcome, CallOutcome]] = {
    ClickToCallOutcome.COMPLETED: CallOutcome.ANSWERED,
    ClickToCallOutcome.LEAD_BUSY: CallOutcome.BUSY,
    ClickToCallOutcome.LEAD_NO_ANSWER: CallOutcome.NO_ANSWER,
    ClickToCallOutcome.LEAD_UNALLOCATED: CallOutcome.UNALLOCATED,
    ClickToCallOutcome.LEAD_CONGESTION: CallOutcome.CONGESTION,
    ClickToCallOutcome.LEAD_REJECTED: CallOutcome.REJECTED,
    ClickToCallOutcome.LEAD_FAILED: CallOutcome.FAILED,
    ClickToCallOutcome.AGENT_NO_ANSWER: CallOutcome.AGENT_NO_ANSWER,
    ClickToCallOutcome.AGENT_BUSY: CallOutcome.AGENT_NO_ANSWER,
    ClickToCallOutcome.AGENT_HUNG_UP_BEFORE_LEAD: CallOutcome.CANCELED,
    ClickToCallOutcome.LEAD_HUNG_UP: CallOutcome.ANSWERED,
    ClickToCallOutcome.AGENT_HUNG_UP: CallOutcome.ABANDONED,
    ClickToCallOutcome.RECORDING_FAILED: CallOutcome.FAILED,
    ClickToCallOutcome.COMPLIANCE_BLOCKED: CallOutcome.BLOCKED,
    ClickToCallOutcome.CANCELLED: CallOutcome.CANCELED,
    ClickToCallOutcome.ASTERISK_LOST: CallOutcome.FAILED,
    ClickToCallOutcome.ORIGINATE_FAILED: CallOutcome.FAILED,
}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One snapshot of a click-to-call call. Timestamps are UTC; durations in seconds.

    Durations are None until they are known: `ring_seconds` (lead dialed -> lead answered,
    or -> end if it never answered) once the lead answers or the call ends, `talk_seconds`
    (bridged -> end) and `total_seconds` (requested -> end) once the call ends.
    """

    call_id: str
    version: int
    state: CallState
    lead_id: str
    agent_id: str
    campaign_id: str | None
    lead_number: str
    agent_endpoint: str
    caller_id: str
    lead_ring_timeout: float
    """The dial timeout given to Asterisk for the lead (never below 15 s)."""
    requested_at: datetime
    agent_ringing_at: datetime | None = None
    agent_answered_at: datetime | None = None
    recording_started_at: datetime | None = None
    lead_dialed_at: datetime | None = None
    lead_ringing_at: datetime | None = None
    lead_answered_at: datetime | None = None
    bridged_at: datetime | None = None
    ended_at: datetime | None = None
    """When the outcome became known (the call entered `ending`)."""
    outcome: ClickToCallOutcome | None = None
    ended_by: str | None = None
    """Who ended the call: `agent`, `lead`, a `HangupBy` value, `timeout` or `system`."""
    detail: str | None = None
    """Free text explaining a failure (recording, originate, gate reasons)."""
    problem: str | None = None
    """The machine-readable reason of a failure the agent can act on (`softphone_not_registered`,
    `sip_endpoint_unknown`); the CRM row's `hangup_cause_text` when no leg had a hangup cause."""
    lead_hangup_cause: int | None = None
    lead_hangup_cause_text: str | None = None
    lead_sip_code: int | None = None
    agent_hangup_cause: int | None = None
    agent_sip_code: int | None = None
    ring_seconds: float | None = None
    talk_seconds: float | None = None
    total_seconds: float | None = None
    recording_name: str | None = None
    """Set once the recording is confirmed started."""
    gate_decision_id: str | None = None
    """The compliance decision that allowed the call to be requested."""
    recheck_decision_id: str | None = None
    """The compliance decision taken after the agent answered, before the lead was dialed."""
    gate_reasons: tuple[str, ...] = ()
    """Reasons of a blocking recheck."""
    trunk: str | None = None
    """The carrier trunk the lead was dialed through (the last one tried)."""
    trunk_attempts: tuple[TrunkAttempt, ...] = ()
    """Tries that failed on other trunks first (503, a timeout: same-call failover)."""

    @property
    def abandoned(self) -> bool:
        """The lead answered and was never connected to the agent, and did not hang up first.

        47 CFR 64.1200(a)(7): a call not connected to a live representative within 2 s of the
        greeting is abandoned; the campaign's abandon tally must count it.
        """
        return (
            self.lead_answered_at is not None
            and self.bridged_at is None
            and self.outcome is not None
            and self.outcome is not ClickToCallOutcome.LEAD_HUNG_UP
        )

    def to_crm_call(self) -> dict[str, object]:
        """The fields of the CRM bridge's `call` record (`crm_bridge.records`, kind `call`)."""
        crm_outcome: CallOutcome | None = None
        if self.outcome is not None:
            crm_outcome = _CRM_OUTCOMES[self.outcome]
            if self.outcome is ClickToCallOutcome.ASTERISK_LOST and self.bridged_at is not None:
                crm_outcome = CallOutcome.ANSWERED
        return {
            "call_id": self.call_id,
            "version": self.version,
            "direction": "outbound",
            "lead_id": self.lead_id,
            "agent_id": self.agent_id,
            "campaign_id": self.campaign_id,
            "lead_number": self.lead_number,
            "agent_endpoint": self.agent_endpoint,
            "caller_id": self.caller_id,
            "requested_at": self.requested_at,
            "agent_answered_at": self.agent_answered_at,
            "lead_ringing_at": self.lead_ringing_at,
            "lead_answered_at": self.lead_answered_at,
            "bridged_at": self.bridged_at,
            "ended_at": self.ended_at,
            "outcome": crm_outcome.value if crm_outcome is not None else None,
            "hangup_cause": self.lead_hangup_cause,
            "hangup_cause_text": self.lead_hangup_cause_text or self.problem,
            "sip_code": self.lead_sip_code,
            "ring_seconds": self.ring_seconds,
            "talk_seconds": self.talk_seconds,
            "total_seconds": self.total_seconds,
            "recording_id": self.recording_name,
            "compliance_decision_id": self.recheck_decision_id or self.gate_decision_id,
            "abandoned": self.abandoned,
            "trunk": self.trunk,
            "trunk_attempts": [attempt.to_json() for attempt in self.trunk_attempts],
        }
