"""The seam between texting and whatever carries texts: one small interface, two adapters
(`sip.py`: SIP MESSAGE through Asterisk over ARI; `provider.py`: an HTTP messaging provider),
and the values both produce (an inbound text, a delivery receipt)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from crm_bridge.records import DeliveryStatus


@dataclass(frozen=True)
class OutgoingText:
    message_id: str
    from_number: str
    to_number: str
    body: str


@dataclass(frozen=True)
class InboundText:
    """A text a phone sent to one of our numbers."""

    from_number: str
    to_number: str
    body: str
    received_at: datetime
    provider_message_id: str | None = None


@dataclass(frozen=True)
class DeliveryReceipt:
    """What the network says became of a text we sent (named by the transport's id for it)."""

    provider_message_id: str
    status: DeliveryStatus
    received_at: datetime
    error: str | None = None


class TransportError(Exception):
    """The transport did not take the text; `permanent` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class TextTransport(Protocol):
    """Sends texts; inbound texts and receipts reach the runtime through its own edge (ARI
    events, a webhook)."""

    name: str

    async def send(self, text: OutgoingText) -> str:
        """Hand `text` over; the transport's id for it (receipts name it). `TransportError`."""
        ...

    async def close(self) -> None: ...
