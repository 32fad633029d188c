"""What happens to an outbound text: the inputs `TextMachine.handle` takes. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class SlotReached:
    """Its sender number's rate limit lets it go now (the runtime waited for the slot)."""


@dataclass(frozen=True)
class GateDecided:
    allowed: bool
    decision_id: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sent:
    """The transport took the text; `provider_message_id` is how receipts will name it."""

    provider_message_id: str


@dataclass(frozen=True)
class SendFailed:
    reason: str


@dataclass(frozen=True)
class Cancel:
    reason: str = "the dialer is shutting down"


TextInput = Start | SlotReached | GateDecided | Sent | SendFailed | Cancel
