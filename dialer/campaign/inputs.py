"""What happens to a campaign call: the inputs `CampaignCall.handle` takes. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.runtime.failover import Rerouted as Rerouted  # shared with click-to-call: one failover path
from dialer.runtime.failover import RerouteFailed as RerouteFailed


@dataclass(frozen=True)
class Dial:
    """Dial the lead: the gate allowed it and the runtime registered the call's ids."""


@dataclass(frozen=True)
class Originated:
    """The originate was accepted (the dial is under way)."""


@dataclass(frozen=True)
class OriginateFailed:
    reason: str


@dataclass(frozen=True)
class LeadRinging:
    """The lead's phone rings (a provisional 180): the carrier reached the called network, so a
    failure after this is the called side's, not a reason to try another trunk."""


@dataclass(frozen=True)
class LeadAnswered:
    pass


@dataclass(frozen=True)
class AmdDecided:
    status: str  # HUMAN, MACHINE, NOTSURE, HANGUP
    cause: str


@dataclass(frozen=True)
class BridgeReady:
    """Bridge made, its recording started, the lead in it."""

    recording: str


@dataclass(frozen=True)
class BridgeFailed:
    reason: str


@dataclass(frozen=True)
class AgentAssigned:
    agent_id: str
    agent_channel: str


@dataclass(frozen=True)
class AgentJoined:
    pass


@dataclass(frozen=True)
class AgentLeft:
    """The agent's leg hung up while on the call."""


@dataclass(frozen=True)
class PlaybackDone:
    pass


@dataclass(frozen=True)
class DtmfReceived:
    digit: str


@dataclass(frozen=True)
class LeadGone:
    cause: int | None
    sip_code: int | None = None
    text: str | None = None
    channel_id: str | None = None  # the leg that ended (None: the current one)


@dataclass(frozen=True)
class InboundAnswered:
    """An inbound caller was answered by the app (no AMD: the caller called us)."""


@dataclass(frozen=True)
class Stop:
    """The campaign is stopping: end the call if it has no person on it yet."""


@dataclass(frozen=True)
class HangupRequested:
    """Someone with the right asked to end the call (`POST /v1/calls/{id}/hangup`): `by` names
    who (agent, supervisor, api)."""

    by: str


CallInput = (
    Dial | Originated | OriginateFailed | LeadRinging | LeadAnswered | Rerouted | RerouteFailed | AmdDecided | BridgeReady | BridgeFailed | AgentAssigned
    | AgentJoined | AgentLeft | PlaybackDone | DtmfReceived | LeadGone | Stop | HangupRequested | InboundAnswered
)


