"""What an outbound text asks the runtime to do: the actions `TextMachine` returns. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.texting.record import TextRecord


@dataclass(frozen=True)
class WaitForSlot:
    """Wait for the sender number's next free slot under its rate limit (`SenderPacer`), then
    feed `SlotReached`."""

    sender: str
    segments: int


@dataclass(frozen=True)
class CheckGate:
    """Ask the gate again, channel `sms`, at this instant (`decide_at_dial`, a cap slot taken
    for a marketing text); its answer comes back as `GateDecided`."""


@dataclass(frozen=True)
class Send:
    """Hand the text to the transport (`TextTransport.send`: ARI `PUT /endpoints/sendMessage`
    for SIP, the provider's `POST .../Messages` for HTTP); `Sent` or `SendFailed` comes back."""

    record: TextRecord


@dataclass(frozen=True)
class Emit:
    """Write the snapshot to the CRM `messages` row (durably, through the outbox)."""

    record: TextRecord


@dataclass(frozen=True)
class Finished:
    record: TextRecord


TextAction = WaitForSlot | CheckGate | Send | Emit | Finished
