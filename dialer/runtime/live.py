"""A live call as a supervisor's wallboard and the monitor see it, whichever runtime runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class LiveCall:
    call_id: str
    kind: str  # "click_to_call" or "campaign"
    direction: str  # "outbound" or "inbound"
    state: str  # the runtime's call state (bridged, lead_ringing, waiting_agent, ...)
    connected: bool  # an agent and the lead are in the call's bridge: it can be monitored
    agent_id: str | None
    agent_channel: str | None  # the channel a listening or whispering supervisor snoops on
    bridge_id: str  # the call's bridge, which a barging supervisor joins
    lead_number: str
    campaign_id: str | None
    started_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "kind": self.kind,
            "direction": self.direction,
            "state": self.state,
            "connected": self.connected,
            "agent_id": self.agent_id,
            "lead_number": self.lead_number,
            "campaign_id": self.campaign_id,
            "started_at": self.started_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


class HangupBy(StrEnum):
    """Who asked the dialer to end a call (`HangupRequested.by`)."""

    API = "api"
    """The CRM, through the HTTP API."""
    AGENT = "agent"
    """The agent, from the browser console."""
    SUPERVISOR = "supervisor"
    SYSTEM = "system"
    """The dialer itself (shutdown, a failed bridge operation)."""


class LiveCallSource(Protocol):
    """A runtime that runs calls (the click-to-call controller, the campaign runtime)."""

    call_end_listeners: list[Callable[[str], None]]

    def live_calls(self) -> list[LiveCall]: ...

    def live_call(self, call_id: str) -> LiveCall | None: ...


class CallControl(Protocol):
    """A slice whose calls can be ended on request (`POST /v1/calls/{id}/hangup`)."""

    def call_status(self, call_id: str) -> str | None:
        """The live call's state, or None when this slice does not run it."""
        ...

    async def hangup(self, call_id: str, by: HangupBy) -> bool:
        """End the call; False when it is already ending or not this slice's."""
        ...
