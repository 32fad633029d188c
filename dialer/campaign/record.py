"""One campaign call's states and snapshot; `to_crm_call()` gives its CRM `calls` row. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from compliance_rules.telemarketing import CONNECT_LIMIT_SECONDS, is_live_answer
from crm_bridge.records import CallOutcome
from dialer.provision.trunks import TrunkAttempt
from dialer.runtime.causes import utc


class CampaignCallState(StrEnum):
    DIALING = "dialing"
    ANSWERED = "answered"  # up, AMD listening
    WAITING_AGENT = "waiting_agent"  # a person; bridge being made, looking for a ready agent
    CONNECTING = "connecting"  # an agent is reserved and joining the bridge
    BRIDGED = "bridged"
    SAFE_HARBOR = "safe_harbor"
    MACHINE = "machine"
    ENDING = "ending"
    ENDED = "ended"


class MachineAction(StrEnum):
    HANGUP = "hangup"
    MESSAGE = "message"


@dataclass(frozen=True)
class CampaignCallRecord:
    """One snapshot of the call (epoch seconds); `to_crm_call()` gives the CRM `call` record."""

    call_id: str
    version: int
    state: CampaignCallState
    campaign_id: str
    lead_id: str
    phone: str
    caller_id: str
    decision_id: str
    requested_at: float
    agent_id: str | None = None
    answered_at: float | None = None
    greeting_ended_at: float | None = None
    bridged_at: float | None = None
    ended_at: float | None = None
    amd_result: str | None = None
    amd_cause: str | None = None
    safe_harbor_played: bool = False
    opted_out: bool = False
    message_left: bool = False
    recording: str | None = None
    outcome: CallOutcome | None = None
    cause: int | None = None
    sip_code: int | None = None
    cause_text: str | None = None
    inbound: bool = False
    trunk: str | None = None  # the trunk that carried the call (the last one tried)
    trunk_attempts: tuple[TrunkAttempt, ...] = ()  # tries that failed on other trunks first

    @property
    def live_answer(self) -> bool:
        """AMD said (or could not rule out) a person: the call counts in the abandon rate."""
        return is_live_answer(self.amd_result, inbound=self.inbound)

    @property
    def abandoned(self) -> bool:
        """47 CFR 64.1200(a)(7): a person not connected to an agent within 2 s of the greeting."""
        if self.inbound or not self.live_answer or self.greeting_ended_at is None:
            return False
        if self.bridged_at is None:
            return self.state is CampaignCallState.ENDED or self.safe_harbor_played
        return self.bridged_at - self.greeting_ended_at > CONNECT_LIMIT_SECONDS

    def to_crm_call(self) -> dict[str, object]:
        end = self.ended_at
        return {
            "call_id": self.call_id,
            "version": self.version,
            "direction": "inbound" if self.inbound else "outbound",
            "lead_id": self.lead_id,
            "agent_id": self.agent_id,
            "campaign_id": self.campaign_id,
            "lead_number": self.phone,
            "caller_id": self.caller_id,
            "requested_at": utc(self.requested_at),
            "lead_answered_at": None if self.answered_at is None else utc(self.answered_at),
            "bridged_at": None if self.bridged_at is None else utc(self.bridged_at),
            "ended_at": None if end is None else utc(end),
            "outcome": None if self.outcome is None else self.outcome.value,
            "hangup_cause": self.cause,
            "hangup_cause_text": self.cause_text,
            "sip_code": self.sip_code,
            "ring_seconds": None if self.answered_at is None else self.answered_at - self.requested_at,
            "talk_seconds": None if self.bridged_at is None or end is None else end - self.bridged_at,
            "total_seconds": None if end is None else end - self.requested_at,
            "compliance_decision_id": self.decision_id or None,
            "recording_id": self.recording,
            "amd_result": self.amd_result,
            "amd_cause": self.amd_cause,
            "greeting_ended_at": None if self.greeting_ended_at is None else utc(self.greeting_ended_at),
            "safe_harbor_played": self.safe_harbor_played,
            "abandoned": self.abandoned,
            "trunk": self.trunk,
            "trunk_attempts": [attempt.to_json() for attempt in self.trunk_attempts],
        }


