"""The typed bodies of supervisors' monitors and the live-call wallboard (the OpenAPI document
is generated from them)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dialer.api.schema import Line, RequestModel, ResponseModel, UtcTime, utc_from_epoch
from dialer.monitor.record import EndReason, MonitorMode, MonitorRecord, MonitorState
from dialer.runtime.live import LiveCall

MODE = ("listen: hears agent and lead, heard by nobody; whisper: heard by the agent only; "
        "barge: joins the call, everyone hears everyone")


class MonitorRequest(RequestModel):
    endpoint: Line = Field(description="the supervisor softphone's PJSIP endpoint, e.g. supervisor01")
    mode: MonitorMode = Field(description=MODE)


class ModeRequest(RequestModel):
    mode: MonitorMode = Field(description=MODE)


class MonitorBrief(ResponseModel):
    monitor_id: str
    call_id: str
    mode: MonitorMode
    state: str = Field(description="dialing, connected, ending, ended")


class ModeAt(ResponseModel):
    mode: MonitorMode
    at: UtcTime


class MonitorSessionBody(ResponseModel):
    """A monitor session, live or as kept for audit."""

    monitor_id: str
    call_id: str
    call_kind: str = Field(description="click_to_call or campaign")
    agent_id: str | None
    campaign_id: str | None
    endpoint: str
    state: MonitorState
    mode: MonitorMode
    mode_active: bool = Field(description="the mode is wired in Asterisk")
    modes: list[ModeAt] = Field(description="every mode asked for, and when")
    requested_at: UtcTime
    answered_at: UtcTime | None
    ended_at: UtcTime | None
    end_reason: EndReason | None
    end_detail: str | None

    @classmethod
    def of(cls, record: MonitorRecord) -> MonitorSessionBody:
        return cls(
            monitor_id=record.monitor_id, call_id=record.call_id, call_kind=record.call_kind,
            agent_id=record.agent_id, campaign_id=record.campaign_id, endpoint=record.endpoint, state=record.state,
            mode=record.mode, mode_active=record.mode_active,
            modes=[ModeAt(mode=mode, at=utc_from_epoch(at)) for mode, at in record.modes],
            requested_at=utc_from_epoch(record.requested_at), answered_at=utc_from_epoch(record.answered_at),
            ended_at=utc_from_epoch(record.ended_at), end_reason=record.end_reason, end_detail=record.end_detail,
        )

    @classmethod
    def stored(cls, row: dict[str, Any]) -> MonitorSessionBody:
        """A session as the CRM keeps it (`monitor_sessions`)."""
        return cls.model_validate({
            "monitor_id": row["monitor_id"], "call_id": row["call_id"], "call_kind": row["call_kind"],
            "agent_id": row["agent_id"], "campaign_id": row["campaign_id"], "endpoint": row["supervisor_endpoint"],
            "state": row["state"], "mode": row["mode"], "mode_active": False, "modes": row["modes"] or [],
            "requested_at": row["requested_at"], "answered_at": row["answered_at"], "ended_at": row["ended_at"],
            "end_reason": row["end_reason"], "end_detail": row["end_detail"],
        })


class LiveMonitor(ResponseModel):
    monitor_id: str
    endpoint: str
    mode: MonitorMode
    state: MonitorState
    mode_active: bool


class LiveCallBody(ResponseModel):
    """A call in progress, whichever runtime runs it."""

    call_id: str
    kind: str = Field(description="click_to_call or campaign")
    direction: str = Field(description="outbound or inbound")
    state: str = Field(description="the runtime's call state (bridged, lead_ringing, waiting_agent, ...)")
    connected: bool = Field(description="an agent and the lead are in the call's bridge: it can be monitored")
    agent_id: str | None
    lead_number: str
    campaign_id: str | None
    started_at: UtcTime
    monitors: list[LiveMonitor]

    @classmethod
    def of(cls, call: LiveCall, monitors: list[MonitorRecord]) -> LiveCallBody:
        return cls(call_id=call.call_id, kind=call.kind, direction=call.direction, state=call.state,
                   connected=call.connected, agent_id=call.agent_id, lead_number=call.lead_number,
                   campaign_id=call.campaign_id, started_at=call.started_at,
                   monitors=[LiveMonitor(monitor_id=r.monitor_id, endpoint=r.endpoint, mode=r.mode, state=r.state,
                                         mode_active=r.mode_active) for r in monitors])


class LiveCalls(ResponseModel):
    calls: list[LiveCallBody]
    next: str | None = Field(default=None, description="always null: the live calls are one snapshot")
