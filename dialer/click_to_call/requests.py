"""What the HTTP API asks of the click-to-call runtime, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dialer.runtime.live import HangupBy


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


class CallService(Protocol):
    """The click-to-call runtime as the HTTP API sees it."""

    async def place_call(self, request: DialRequest, *, call_id: str | None = None) -> PlacedCall: ...

    async def hangup(self, call_id: str, by: HangupBy) -> bool: ...

    def call_status(self, call_id: str) -> str | None: ...
