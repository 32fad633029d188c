"""What happens to a monitor session: the inputs `MonitorSession.handle` takes. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.monitor.record import EndReason, MonitorMode


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class SupervisorAnswered:
    """The supervisor's channel entered the app (an originate enters Stasis on answer)."""


@dataclass(frozen=True)
class SupervisorGone:
    cause: int = 0
    text: str = ""


@dataclass(frozen=True)
class OriginateFailed:
    reason: str


@dataclass(frozen=True)
class SnoopUp:
    """A snoop channel entered the app (it can be bridged now)."""

    snoop_id: str


@dataclass(frozen=True)
class SnoopGone:
    snoop_id: str


@dataclass(frozen=True)
class Entered:
    """A channel of ours entered a bridge (`ChannelEnteredBridge`)."""

    channel_id: str
    bridge_id: str


@dataclass(frozen=True)
class ChangeMode:
    mode: MonitorMode


@dataclass(frozen=True)
class Stop:
    reason: EndReason = EndReason.STOPPED


@dataclass(frozen=True)
class CallEnded:
    pass


@dataclass(frozen=True)
class StepFailed:
    """Asterisk refused a step (bridge, snoop, add to bridge); `channel_id` names a snoop that
    was never made."""

    step: str
    reason: str
    channel_id: str | None = None


@dataclass(frozen=True)
class AsteriskLost:
    pass


MonitorInput = (
    Start | SupervisorAnswered | SupervisorGone | OriginateFailed | SnoopUp | SnoopGone | Entered | ChangeMode
    | Stop | CallEnded | StepFailed | AsteriskLost
)


