"""What a click-to-call call asks the runtime to do: the actions `CallMachine` returns. Pure.

The runtime executes them in the order given, one call's actions one at a time. Ids are the
call's own deterministic ids (`CallIds`), so the runtime originates with them and, after a
restart, recognises its channels and bridge in `GET /channels` and `GET /bridges`.
Teardown actions (`HangupChannel`, `StopRecording`, `DestroyBridge`) are best effort: a 404
means the thing is already gone, which is what was wanted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.click_to_call.record import CallRecord, ClickToCallOutcome
from dialer.runtime.failover import RerouteLead as RerouteLead  # one failover path with campaign calls
from dialer.runtime.failover import retry_channel


@dataclass(frozen=True, slots=True)
class CallIds:
    """The ids of everything one call creates in Asterisk, derived from the call id."""

    call_id: str
    lead_attempt: int = 1  # the lead's try: after a trunk failover, a new leg (`{call}-lead-2`)

    @property
    def agent_channel(self) -> str:
        return f"{self.call_id}-agent"

    @property
    def lead_channel(self) -> str:
        return retry_channel(self.call_id, self.lead_attempt)

    @property
    def bridge(self) -> str:
        return f"{self.call_id}-bridge"

    @property
    def recording(self) -> str:
        return f"{self.call_id}-recording"

    @property
    def recording_notice(self) -> str:
        return f"{self.call_id}-recording-notice"


@dataclass(frozen=True, slots=True)
class OriginateAgent:
    """Ring the agent's softphone (`POST /channels/{channel_id}` into the Stasis app).

    `timeout` is the originate's ring timeout in seconds; on answer the channel enters Stasis.
    `caller_name` and `caller_number` are what the agent's phone shows (the lead): presentation
    only, not part of the action's identity.
    """

    channel_id: str
    endpoint: str
    timeout: float
    caller_name: str = field(default="", compare=False)
    caller_number: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """Tell the agent's console which lead and call are coming, before the lead answers."""

    call_id: str
    agent_id: str
    lead_id: str
    campaign_id: str | None
    lead_number: str


@dataclass(frozen=True, slots=True)
class CreateBridge:
    """`POST /bridges/{bridge_id}` with type `mixing,dtmf_events` (in that order)."""

    bridge_id: str


@dataclass(frozen=True, slots=True)
class AddToBridge:
    """`POST /bridges/{bridge_id}/addChannel`."""

    bridge_id: str
    channel_id: str


@dataclass(frozen=True, slots=True)
class StartRecording:
    """`POST /bridges/{bridge_id}/record` with this `name` (a bridged channel cannot be recorded)."""

    bridge_id: str
    name: str


@dataclass(frozen=True, slots=True)
class CheckGate:
    """Ask the compliance gate about this lead now; answer with `GateDecided`."""

    call_id: str
    lead_id: str
    lead_number: str
    campaign_id: str | None


@dataclass(frozen=True, slots=True)
class DialLead:
    """`POST /channels/create` with `channel_id`, then `POST /channels/{id}/dial` with `timeout`.

    `timeout` is never below 15 s (47 CFR 64.1200(a)(6)); ARI's default 0 would mean never.
    """

    channel_id: str
    endpoint: str
    caller_id: str
    timeout: float


@dataclass(frozen=True, slots=True)
class HangupChannel:
    """`DELETE /channels/{channel_id}` with `reason` (an ARI hangup reason, e.g. `normal`)."""

    channel_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlayRecordingNotice:
    """`POST /bridges/{bridge_id}/play` of "this call is recorded": both parties hear it, and the
    recording keeps it (all-party-consent states)."""

    bridge_id: str
    playback_id: str


@dataclass(frozen=True, slots=True)
class StopRecording:
    """`POST /recordings/live/{name}/stop`."""

    name: str


@dataclass(frozen=True, slots=True)
class DestroyBridge:
    """`DELETE /bridges/{bridge_id}`."""

    bridge_id: str


@dataclass(frozen=True, slots=True)
class Emit:
    """A new snapshot of the call, for the CRM `calls` row (outbox) and the agent's WebSocket."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class Finished:
    """The call is over: its recording is archived and the runtime drops the machine. Emitted
    exactly once. `record` is the final snapshot, for the executor; it is not part of the
    action's identity."""

    outcome: ClickToCallOutcome
    record: CallRecord | None = field(default=None, compare=False, repr=False)


CallAction = (
    OriginateAgent
    | ScreenPop
    | CreateBridge
    | AddToBridge
    | StartRecording
    | CheckGate
    | DialLead
    | RerouteLead
    | HangupChannel
    | PlayRecordingNotice
    | StopRecording
    | DestroyBridge
    | Emit
    | Finished
)
"""Every action `CallMachine` returns."""
