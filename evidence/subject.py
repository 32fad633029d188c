"""Whom a packet is about: one lead, one phone number or one call, optionally within a period.
Pure; a bad request raises `SubjectError` naming the field (the CLI prints it, the API answers 422).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from compliance_rules.numbers import parse_number


class SubjectError(ValueError):
    """A packet request that cannot be served; `field` names the option at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Subject:
    lead_id: str | None = None
    phone: str | None = None
    """E.164."""
    call_id: str | None = None
    start: datetime | None = None
    """Contacts at or after this instant (`--from`)."""
    end: datetime | None = None
    """Contacts before this instant (`--to`)."""

    @property
    def kind(self) -> str:
        return "lead" if self.lead_id else "phone" if self.phone else "call"

    @property
    def value(self) -> str:
        return str(self.lead_id or self.phone or self.call_id)

    def describe(self) -> str:
        period = ""
        if self.start or self.end:
            start = self.start.isoformat() if self.start else "the beginning"
            end = self.end.isoformat() if self.end else "now"
            period = f", contacts from {start} to {end}"
        return f"{self.kind} {self.value}{period}"

    def to_json(self) -> dict[str, Any]:
        return {"lead_id": self.lead_id, "phone": self.phone, "call_id": self.call_id,
                "from": _iso(self.start), "to": _iso(self.end)}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse_time(value: str | None, field: str) -> datetime | None:
    """An ISO-8601 instant with a zone (`2026-11-24T14:30:00Z`), or None."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SubjectError(field, f"{field} must be an ISO-8601 time such as 2026-11-24T14:30:00Z") from None
    if parsed.tzinfo is None:
        raise SubjectError(field, f"{field} needs a time zone (e.g. 2026-11-24T14:30:00Z)")
    return parsed


def subject_from(*, lead_id: str | None = None, phone: str | None = None, call_id: str | None = None,
                 start: datetime | None = None, end: datetime | None = None) -> Subject:
    """Exactly one of lead, phone and call; a valid US number; a period that is not backwards."""
    given = [name for name, value in (("lead_id", lead_id), ("phone", phone), ("call_id", call_id)) if value]
    if len(given) != 1:
        raise SubjectError(given[1] if len(given) > 1 else "lead_id",
                           "name exactly one of a lead, a phone number or a call")
    for name, value in (("lead_id", lead_id), ("call_id", call_id)):
        if value is not None and (len(value) > 200 or not value.strip()):
            raise SubjectError(name, f"{name} must be a non-empty id of at most 200 characters")
    e164 = None
    if phone:
        number = parse_number(phone)
        if number.e164 is None:
            raise SubjectError("phone", f"{phone!r} is not a US phone number ({number.detail})")
        e164 = number.e164
    if start is not None and end is not None and end <= start:
        raise SubjectError("to", "the period ends before it starts (--to is not after --from)")
    return Subject(lead_id or None, e164, call_id or None, start, end)
