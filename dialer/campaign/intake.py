"""`POST /v1/leads`: validate a web lead and merge it into the CRM by enrichment. Pure.

A duplicate is a lead with the same phone or e-mail. Merging fills what the CRM does not
know yet and never overwrites what it knows: a different value is a conflict, kept out of
the lead and reported, and the lead is flagged `needs_review` so a person decides.

Every field is one line of text: control characters (CR/LF, which would add headers where a
name becomes the agent's caller name in a SIP INVITE; NUL, which PostgreSQL refuses), the
Unicode line separators and lone surrogates are refused naming the field (issue 10, items 8-9),
so a lead that is accepted is a lead that will be stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compliance_rules.model import US_STATE_CODES
from compliance_rules.numbers import NumberProblem, parse_number

FIELDS = ("first_name", "last_name", "phone", "email", "state", "zip", "source", "campaign_id", "address_line1",
          "city")
REQUIRED = ("first_name", "phone", "source")
MERGED = ("first_name", "last_name", "email", "state", "zip", "address_line1", "city")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class IntakeError(ValueError):
    """A field of the web lead is missing or invalid; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class WebLead:
    first_name: str
    phone: str  # E.164
    source: str
    last_name: str | None = None
    email: str | None = None
    state: str | None = None
    zip: str | None = None
    address_line1: str | None = None
    city: str | None = None
    campaign_id: str | None = None


def parse_web_lead(body: Mapping[str, Any]) -> WebLead:
    """Validate the request body; `IntakeError` names the first bad field."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise IntakeError(unknown[0], f"unknown field {unknown[0]!r}; expected some of {', '.join(FIELDS)}")
    values: dict[str, str | None] = {}
    for name in FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 200):
            raise IntakeError(name, f"{name} must be a non-empty string (at most 200 characters)")
        if isinstance(value, str) and _UNSAFE.search(value):
            raise IntakeError(name, f"{name} must not contain control characters, line breaks or invalid text")
        values[name] = value.strip() if isinstance(value, str) else None
    for name in REQUIRED:
        if values[name] is None:
            raise IntakeError(name, f"{name} is required")
    number = parse_number(values["phone"] or "")
    if number.e164 is None or not number.ok:
        # A premium-rate (900) number parses but is never dialable: refused, as the CSV import does.
        why = f" ({number.detail})" if number.problem in (NumberProblem.NOT_US, NumberProblem.NOT_DIALABLE) else ""
        raise IntakeError("phone", f"phone {values['phone']!r} is not a valid, dialable US phone number{why}")
    email = values["email"]
    if email is not None:
        if not _EMAIL.match(email):
            raise IntakeError("email", f"email {email!r} is not an e-mail address")
        values["email"] = email.lower()
    state = values["state"]
    if state is not None:
        # As the CSV import does: "ZZ" is no state, and a state the gate's rules cannot name
        # would only confuse the lead's location.
        if not re.fullmatch(r"[A-Za-z]{2}", state) or state.upper() not in US_STATE_CODES:
            raise IntakeError("state", f"state {state!r} is not a two-letter US state code (NY, CA, DC, PR, ...)")
        values["state"] = state.upper()
    if values["zip"] is not None and not _ZIP.match(values["zip"]):
        raise IntakeError("zip", "zip must be a US ZIP code (12345 or 12345-6789)")
    values["phone"] = number.e164
    return WebLead(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Merge:
    """What to write: the `lead_upsert` patch, and the conflicting fields kept out of it."""

    patch: dict[str, object]
    conflicts: tuple[str, ...]


def merge(lead: WebLead, existing: Mapping[str, Any] | None, lead_id: str) -> Merge:
    """The patch that records `lead` (new) or enriches `existing` (a duplicate)."""
    incoming = {name: getattr(lead, name) for name in MERGED if getattr(lead, name) is not None}
    if existing is None:
        return Merge({"lead_id": lead_id, **incoming, "phones": [lead.phone], "source": lead.source}, ())
    patch: dict[str, object] = {"lead_id": lead_id}
    conflicts: list[str] = []
    for name, value in incoming.items():
        current = existing.get(name)
        if current is None or current == "":
            patch[name] = value
        elif str(current).strip().lower() != str(value).strip().lower():
            conflicts.append(name)
    phones = list(existing.get("phones") or ())
    if lead.phone not in phones:
        patch["phones"] = [*phones, lead.phone]
    if conflicts:
        patch["needs_review"] = True
        patch["review_reason"] = f"web lead from {lead.source} disagrees on {', '.join(conflicts)}"
    return Merge(patch, tuple(conflicts))
