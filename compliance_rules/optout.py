"""Opt-outs from every source, effective for the very next decision on every controller.

`opt_out()` writes the number to Redis (the list every gate reads on every decision, no local
cache); the dialer's runtime first makes the CRM's durable record (`dialer.runtime.optout`).
47 CFR 64.1200(a)(10)-(12): consent may be revoked by any reasonable means; 64.1200(d)(3):
honor do-not-call requests (at most 10 business days; we honor them at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from compliance_rules.numbers import parse_number
from compliance_rules.rules import OPTOUT
from compliance_rules.store import DncStore


class OptOutSource(StrEnum):
    API = "api"
    DISPOSITION = "disposition"  # the agent's wrap-up disposition
    SMS_KEYWORD = "sms_keyword"
    SAFE_HARBOR_KEY = "safe_harbor_key"  # key press after the abandonment message, 64.1200(a)(7)(i)(B)
    AGENT = "agent"  # a verbal request taken by an agent


class OptOutError(ValueError):
    """Bad opt-out input; `field` names what is wrong."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class OptOut:
    phone: str  # E.164
    source: OptOutSource
    recorded_at: datetime
    lead_id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "phone": self.phone,
            "source": self.source.value,
            "recorded_at": self.recorded_at.isoformat().replace("+00:00", "Z"),
            "lead_id": self.lead_id,
        }


# Per se reasonable revocation words, 47 CFR 64.1200(a)(12) (FCC 24-24).
OPT_OUT_KEYWORDS = frozenset({"stop", "quit", "end", "revoke", "opt out", "optout", "cancel", "unsubscribe", "stop all"})


def is_opt_out_keyword(text: str) -> bool:
    """Whether an SMS reply is one of the per-se opt-out words (case and punctuation ignored)."""
    words = " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())
    return words in OPT_OUT_KEYWORDS


def parse_opt_out(
    phone: object, source: object, *, lead_id: str | None = None, now: datetime | None = None
) -> OptOut:
    """Validate an opt-out request; raises `OptOutError` naming the bad field."""
    if not isinstance(phone, str) or not phone.strip():
        raise OptOutError("phone", "required", "phone is required (a US phone number)")
    number = parse_number(phone)
    if number.e164 is None:
        raise OptOutError("phone", "invalid_number", f"phone {phone!r} is not a valid US phone number")
    try:
        kind = OptOutSource(source if isinstance(source, str) else "")
    except ValueError:
        allowed = ", ".join(s.value for s in OptOutSource)
        raise OptOutError("source", "invalid_choice", f"source must be one of {allowed}") from None
    return OptOut(number.e164, kind, now or datetime.now(UTC), lead_id)


async def block(store: DncStore, phone: str) -> None:
    """Put an opted-out number on the opt-out list every gate reads: effective for the next decision."""
    await store.set_membership(OPTOUT, parse_number(phone), True)


async def opt_out(
    store: DncStore, phone: object, source: object, *, lead_id: str | None = None, now: datetime | None = None
) -> OptOut:
    """Validate and put `phone` on the opt-out list now (the list only: the runtime's
    `dialer.runtime.optout.OptOuts` also makes the CRM's durable record, first)."""
    result = parse_opt_out(phone, source, lead_id=lead_id, now=now)
    await block(store, result.phone)
    return result
