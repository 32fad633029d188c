"""Click-to-call calls: a pure state machine (`CallMachine`), its inputs, actions and record."""

from dialer.calls.machine import (
    MIN_LEAD_RING_SECONDS,
    CallMachine,
    CallRequest,
    CallTimeouts,
    InvalidStateError,
)
from dialer.calls.record import CallOutcome, CallRecord, CallState

__all__ = [
    "MIN_LEAD_RING_SECONDS",
    "CallMachine",
    "CallOutcome",
    "CallRecord",
    "CallRequest",
    "CallState",
    "CallTimeouts",
    "InvalidStateError",
]
