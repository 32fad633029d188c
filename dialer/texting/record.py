"""What an outbound text is and was: its states, and the snapshot the CRM keeps (`messages`)
and the API answers with. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from compliance_rules.model import TextKind
from dialer.texting.segments import TextSize


class TextState(StrEnum):
    QUEUED = "queued"  # waiting for its sender number's next slot
    CHECKING = "checking"  # waited: the gate is asked again before it goes
    SENDING = "sending"  # handed to the transport
    SENT = "sent"  # the transport took it (delivery receipts come later)
    BLOCKED = "blocked"  # the gate said no at the instant of sending
    EXPIRED = "expired"  # waited longer than it may
    FAILED = "failed"  # the transport refused it
    CANCELED = "canceled"  # the dialer shut down before it went

    @property
    def final(self) -> bool:
        return self in (TextState.SENT, TextState.BLOCKED, TextState.EXPIRED, TextState.FAILED, TextState.CANCELED)


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


def utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


@dataclass(frozen=True)
class TextRecord:
    """One outbound text as the CRM's `messages` row has it."""

    message_id: str
    version: int
    kind: TextKind
    lead_id: str | None
    agent_id: str | None
    campaign_id: str | None
    from_number: str
    to_number: str
    body: str
    size: TextSize
    state: TextState
    requested_at: float
    transport: str
    decision_id: str | None = None
    provider_message_id: str | None = None
    sent_at: float | None = None
    detail: str | None = None
    template_id: str | None = None
    requested_by: str | None = None

    def to_crm(self) -> dict[str, object]:
        """The outbox record (kind `message`)."""
        return {
            "message_id": self.message_id, "version": self.version, "direction": Direction.OUTBOUND.value,
            "kind": self.kind.value, "lead_id": self.lead_id, "agent_id": self.agent_id,
            "campaign_id": self.campaign_id, "from_number": self.from_number, "to_number": self.to_number,
            "body": self.body, "encoding": self.size.encoding.value, "segments": self.size.segments,
            "template_id": self.template_id, "transport": self.transport,
            "provider_message_id": self.provider_message_id, "status": self.state.value,
            "status_detail": self.detail, "compliance_decision_id": self.decision_id,
            "requested_by": self.requested_by, "created_at": utc(self.requested_at), "sent_at": utc(self.sent_at),
        }
