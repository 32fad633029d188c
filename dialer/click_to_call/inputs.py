"""What happens to a click-to-call call: the inputs `CallMachine.handle` takes. Pure.

Each input is a small frozen dataclass, independent of ARI's JSON: the runtime parses ARI
events at the edge and translates the ones that belong to a call into these (see
docs/calls.md for the mapping). Commands from the dialer itself (`Start`, `HangupRequested`)
and results of actions the runtime ran (`BridgeCreated`, `GateDecided`, `OriginateFailed`)
are inputs too, so the machine sees one ordered stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dialer.runtime.failover import Rerouted as Rerouted  # one failover path with campaign calls
from dialer.runtime.failover import RerouteFailed as RerouteFailed
from dialer.runtime.live import HangupBy


class Leg(StrEnum):
    """The two channels of a click-to-call call."""

    AGENT = "agent"
    LEAD = "lead"


@dataclass(frozen=True, slots=True)
class Start:
    """Originate the agent leg: the gate allowed the call and the runtime registered its ids."""


@dataclass(frozen=True, slots=True)
class AgentRinging:
    """The agent's softphone is ringing (ARI `ChannelStateChange` to `Ringing`)."""


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    """The agent answered (ARI `StasisStart` of the agent channel)."""


@dataclass(frozen=True, slots=True)
class AgentHungUp:
    """The agent channel is gone (ARI `ChannelDestroyed`).

    `cause` is the Q.850 cause (`ChannelDestroyed.cause`), `sip_code` the SIP response
    (`tech_cause`) when Asterisk gives one.
    """

    cause: int | None = None
    sip_code: int | None = None
    cause_text: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeCreated:
    """The call's mixing bridge exists (the `POST /bridges/{id}` succeeded, or 409)."""


@dataclass(frozen=True, slots=True)
class BridgeFailed:
    """The call's bridge could not be created; without it the call cannot be recorded."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    """The bridge recording is running (ARI `RecordingStarted`); `name` is the recording's name."""

    name: str


@dataclass(frozen=True, slots=True)
class RecordingFailed:
    """The bridge recording failed to start or stopped (ARI `RecordingFailed`, or a refused request)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class GateDecided:
    """The compliance gate's answer to `CheckGate`, for the call as it is at that instant."""

    allowed: bool
    decision_id: str | None = None
    reasons: tuple[str, ...] = field(default=())
    # The lead may be in an all-party-consent state: announce the recording once they join.
    recording_disclosure: bool = False


@dataclass(frozen=True, slots=True)
class LeadRinging:
    """The lead's phone is ringing (ARI `ChannelStateChange` to `Ringing`, or `Dial` RINGING)."""


@dataclass(frozen=True, slots=True)
class LeadAnswered:
    """The lead answered (ARI `ChannelStateChange` to `Up`, or `Dial` with status ANSWER)."""


@dataclass(frozen=True, slots=True)
class LeadHungUp:
    """The lead channel is gone (ARI `ChannelDestroyed`); fields as in `AgentHungUp`."""

    cause: int | None = None
    sip_code: int | None = None
    cause_text: str | None = None
    channel_id: str | None = None
    """The leg that ended (None: the current one). Asterisk may report a leg's end twice; after a
    trunk failover the second report of the failed leg must not end the retry's new leg."""


@dataclass(frozen=True, slots=True)
class LeadJoined:
    """The lead is in the call's bridge (ARI `ChannelEnteredBridge` for the lead channel)."""


@dataclass(frozen=True, slots=True)
class HangupRequested:
    """Someone asked to end the call (CRM API, agent console, supervisor, the dialer)."""

    by: HangupBy = HangupBy.API


@dataclass(frozen=True, slots=True)
class AsteriskLost:
    """The connection to Asterisk is gone: events may be missing until it is reconciled."""


@dataclass(frozen=True, slots=True)
class AsteriskReconciled:
    """After a reconnect, the ids of the channels `GET /channels` lists.

    A leg this call originated that is not listed is gone, and its outcome was lost with the
    events: the call ends as `asterisk_lost`. If every live leg is listed, the call goes on.
    """

    live_channel_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class OriginateFailed:
    """Asterisk refused to originate/create/dial a leg (a REST error other than 409)."""

    leg: Leg
    reason: str = ""
    problem: str | None = None
    """Why, in the API's words, when Asterisk's refusal is explained: `softphone_not_registered`,
    `sip_endpoint_unknown` (`dialer.runtime.agents.why_phone_unreachable`)."""


CallInput = (
    Start
    | AgentRinging
    | AgentAnswered
    | AgentHungUp
    | BridgeCreated
    | BridgeFailed
    | RecordingStarted
    | RecordingFailed
    | GateDecided
    | LeadRinging
    | LeadAnswered
    | LeadHungUp
    | LeadJoined
    | HangupRequested
    | AsteriskLost
    | AsteriskReconciled
    | OriginateFailed
    | Rerouted
    | RerouteFailed
)
"""Every input `CallMachine.handle` accepts."""
