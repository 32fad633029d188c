"""What the API asks of the controller, and the ways a request can be refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from dialer.click_to_call.inputs import HangupBy


@dataclass(frozen=True)
class DialRequest:
    """`POST /v1/calls`: call a lead (or an ad-hoc number) for an agent."""

    agent_id: str
    lead_id: str | None = None
    phone: str | None = None
    campaign_id: str | None = None


@dataclass(frozen=True)
class PlacedCall:
    call_id: str
    status: str
    decision_id: str | None = None


class CallRefused(Exception):
    """The request cannot be placed; `status`/`error`/`field` become the HTTP answer."""

    def __init__(self, status: int, error: str, message: str, *, field_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field_name


@dataclass(frozen=True)
class BlockedReason:
    code: str
    message: str
    citation: str | None = None


class ComplianceBlocked(Exception):
    """The compliance gate said no; the decision (with its reasons) is in the audit table."""

    def __init__(self, decision_id: str, reasons: list[BlockedReason]) -> None:
        super().__init__(", ".join(reason.code for reason in reasons))
        self.decision_id = decision_id
        self.reasons = reasons


@dataclass
class AgentMessage:
    """One message on an agent's event WebSocket."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)


class CallService(Protocol):
    """The controller as the HTTP API sees it."""

    async def place_call(self, request: DialRequest, *, call_id: str | None = None) -> PlacedCall: ...

    async def hangup(self, call_id: str, by: HangupBy) -> bool: ...

    def call_status(self, call_id: str) -> str | None: ...
