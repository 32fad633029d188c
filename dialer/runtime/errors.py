"""How the runtime says no: errors named by who is at fault. Pure (no IO), so the state
machines raise them too.

- `Refused`: a request the runtime will not carry out (unknown agent, agent busy, shutting
  down); `status`/`error`/`field` become the HTTP answer.
- `ComplianceBlocked`: the compliance gate said no; the decision is in the audit table.
- `InvalidStateError`: an operation a machine's current state does not allow (a misuse).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Refused(Exception):
    """A request the runtime refuses; `status`/`error`/`field` become the HTTP answer."""

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


class InvalidStateError(RuntimeError):
    """An operation that a machine's current state does not allow; the message names the state."""

    def __init__(self, message: str, *, state: StrEnum, operation: str) -> None:
        super().__init__(message)
        self.state = state
        self.operation = operation
