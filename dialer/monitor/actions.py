"""What a monitor session asks the runtime to do: the actions `MonitorSession` returns. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.monitor.record import MonitorRecord


@dataclass(frozen=True)
class OriginateSupervisor:
    """Ring the supervisor's softphone into the app (`POST /channels/{channel_id}`); `caller_name`
    and `caller_number` are what its screen shows (presentation only, not the action's identity)."""

    channel_id: str
    endpoint: str
    timeout: int
    caller_name: str = field(default="", compare=False)
    caller_number: str = field(default="", compare=False)


@dataclass(frozen=True)
class CreateBridge:
    bridge_id: str


@dataclass(frozen=True)
class StartSnoop:
    snoop_id: str
    target_channel: str
    spy: str
    whisper: str


@dataclass(frozen=True)
class AddToBridge:
    bridge_id: str
    channel_ids: tuple[str, ...]


@dataclass(frozen=True)
class HangUp:
    channel_id: str


@dataclass(frozen=True)
class DestroyBridge:
    bridge_id: str


@dataclass(frozen=True)
class Emit:
    record: MonitorRecord


@dataclass(frozen=True)
class Finished:
    record: MonitorRecord


MonitorAction = OriginateSupervisor | CreateBridge | StartSnoop | AddToBridge | HangUp | DestroyBridge | Emit | Finished


