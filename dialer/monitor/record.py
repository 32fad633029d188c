"""What a monitor session is and was: its states, modes and end reasons, and the snapshot the
API answers with and the CRM keeps (`monitor_sessions`). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class MonitorMode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


class MonitorState(StrEnum):
    DIALING = "dialing"  # the supervisor's softphone rings
    CONNECTED = "connected"  # answered; `mode` applied (or being applied: `mode_active`)
    ENDING = "ending"  # tearing down our channels and bridge
    ENDED = "ended"


class EndReason(StrEnum):
    STOPPED = "stopped"  # ended through the API
    CALL_ENDED = "call_ended"  # the monitored call ended (or its agent left it)
    SUPERVISOR_NO_ANSWER = "supervisor_no_answer"
    SUPERVISOR_BUSY = "supervisor_busy"  # busy or declined
    SUPERVISOR_UNREACHABLE = "supervisor_unreachable"  # not registered, or the originate was refused
    SUPERVISOR_HUNG_UP = "supervisor_hung_up"
    SETUP_FAILED = "setup_failed"  # Asterisk refused a snoop or bridge step
    ASTERISK_LOST = "asterisk_lost"
    SHUTDOWN = "shutdown"
    CONTROLLER_RESTARTED = "controller_restarted"  # open when the controller died; closed at its restart


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _iso(epoch: float | None) -> str | None:
    stamp = _utc(epoch)
    return None if stamp is None else stamp.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class MonitorRecord:
    """What a monitor session is and was: the API's answer and the audit row (`monitor_sessions`)."""

    monitor_id: str
    version: int
    call_id: str
    call_kind: str
    agent_id: str | None
    campaign_id: str | None
    endpoint: str
    requested_by: str | None
    state: MonitorState
    mode: MonitorMode
    mode_active: bool
    modes: tuple[tuple[MonitorMode, float], ...]  # every mode asked for, and when
    requested_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    end_detail: str | None = None
    supervisor_cause: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "monitor_id": self.monitor_id,
            "call_id": self.call_id,
            "call_kind": self.call_kind,
            "agent_id": self.agent_id,
            "campaign_id": self.campaign_id,
            "endpoint": self.endpoint,
            "state": self.state.value,
            "mode": self.mode.value,
            "mode_active": self.mode_active,
            "modes": [{"mode": mode.value, "at": _iso(at)} for mode, at in self.modes],
            "requested_at": _iso(self.requested_at),
            "answered_at": _iso(self.answered_at),
            "ended_at": _iso(self.ended_at),
            "end_reason": self.end_reason.value if self.end_reason else None,
            "end_detail": self.end_detail,
        }

    def to_crm(self) -> dict[str, object]:
        """The outbox record (kind `monitor_session`)."""
        return {
            "monitor_id": self.monitor_id,
            "version": self.version,
            "call_id": self.call_id,
            "call_kind": self.call_kind,
            "agent_id": self.agent_id,
            "campaign_id": self.campaign_id,
            "supervisor_endpoint": self.endpoint,
            "requested_by": self.requested_by,
            "state": self.state.value,
            "mode": self.mode.value,
            "modes": [{"mode": mode.value, "at": _iso(at)} for mode, at in self.modes],
            "requested_at": _utc(self.requested_at),
            "answered_at": _utc(self.answered_at),
            "ended_at": _utc(self.ended_at),
            "end_reason": self.end_reason.value if self.end_reason else None,
            "end_detail": self.end_detail,
            "supervisor_cause": self.supervisor_cause,
        }


