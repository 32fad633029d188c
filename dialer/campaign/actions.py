"""What a campaign call asks the runtime to do: the actions `CampaignCall` returns. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.campaign.record import CampaignCallRecord
from dialer.pacing.types import DialOutcome, EventKind
from dialer.runtime.failover import RerouteLead as RerouteLead  # shared with click-to-call


@dataclass(frozen=True)
class OriginateLead:
    """`POST /channels/{channel_id}` through the trunk into the dialplan's `dialer-amd` context,
    which runs `AMD(amd_args)` and then enters the app; answered with `Originated` or
    `OriginateFailed`. `ring_timeout` is never below 15 s (47 CFR 64.1200(a)(6))."""

    channel_id: str
    endpoint: str
    caller_id: str
    ring_timeout: int
    amd_args: str


@dataclass(frozen=True)
class PrepareBridge:
    bridge_id: str
    recording: str
    lead_channel: str


@dataclass(frozen=True)
class WantAgent:
    """Find a ready agent now or when one becomes ready (feeds `AgentAssigned`)."""


@dataclass(frozen=True)
class CancelWant:
    pass


@dataclass(frozen=True)
class ConnectAgent:
    agent_id: str
    agent_channel: str
    bridge_id: str


@dataclass(frozen=True)
class PlaySafeHarbor:
    bridge_id: str
    playback_id: str


@dataclass(frozen=True)
class PlayRecordingNotice:
    """"This call is recorded", into the call's bridge: agent and lead hear it, the recording keeps it."""

    bridge_id: str
    playback_id: str


@dataclass(frozen=True)
class OptOutNumber:
    phone: str
    lead_id: str
    call_id: str


@dataclass(frozen=True)
class LeaveMessage:
    """The campaign's message after the machine's beep (dialplan), recorded as `recording`."""

    lead_channel: str
    recording: str


@dataclass(frozen=True)
class HangupLead:
    lead_channel: str
    reason: str = "normal"


@dataclass(frozen=True)
class ReturnAgent:
    """The agent goes back to its holding bridge, into wrap-up (or released if never joined)."""

    agent_id: str
    joined: bool


@dataclass(frozen=True)
class TeardownBridge:
    bridge_id: str
    recording: str


@dataclass(frozen=True)
class Observe:
    """A measurement for the pacer."""

    kind: EventKind
    seconds: float = 0.0
    outcome: DialOutcome | None = None


@dataclass(frozen=True)
class Emit:
    record: CampaignCallRecord


@dataclass(frozen=True)
class Finished:
    record: CampaignCallRecord


CallAction = (
    OriginateLead | RerouteLead | PrepareBridge | WantAgent | CancelWant | ConnectAgent | PlaySafeHarbor | PlayRecordingNotice | OptOutNumber
    | LeaveMessage | HangupLead | ReturnAgent | TeardownBridge | Observe | Emit | Finished
)


