"""Opt-outs from every source, effective for the very next decision on every controller.

`opt_out()` writes the number to Redis (the list every gate reads on every decision, no local
cache); the dialer's runtime first makes the CRM's durable record (`dialer.runtime.optout`).
47 CFR 64.1200(a)(10)-(12): consent may be revoked by any reasonable means; 64.1200(d)(3):
honor do-not-call requests (at most 10 business days; we honor them at once).
"""

from __future__ import annotations

import re
import unicodedata
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


class TextKeyword(StrEnum):
    """What an inbound text asks for, when it is one of the keywords the dialer must act on."""

    OPT_OUT = "opt_out"  # revocation of consent: every channel, at once
    OPT_IN = "opt_in"  # START / UNSTOP: texts again, where the law allows
    HELP = "help"  # the agency's name and contact


# 47 CFR 64.1200(a)(10) (FCC 24-24): "stop", "quit", "end", "revoke", "opt out", "cancel" or
# "unsubscribe" in reply to a text is a revocation per se, and consent may be revoked by any
# reasonable means. A word counts wherever it stands in the reply, in any case, with other words
# or punctuation around it ("stop please", "STOP!!", "ok cancel it"): a reply that merely might
# be a revocation is honoured as one (blocking one lead too many costs a lead; one too few is a
# violation). The other entries are clear equivalents in English and Spanish.
OPT_OUT_WORDS = frozenset({
    "stop", "stopall", "quit", "end", "revoke", "optout", "cancel", "unsubscribe",
    "alto", "parar", "pare", "paren", "detener", "detente", "cancelar", "basta", "desuscribir", "desuscribirme",
})
OPT_OUT_PHRASES: tuple[tuple[str, ...], ...] = (
    ("opt", "out"), ("stop", "all"), ("remove", "me"), ("take", "me", "off"), ("leave", "me", "alone"),
    ("do", "not", "text"), ("dont", "text"), ("do", "not", "contact"), ("dont", "contact"),
    ("do", "not", "call"), ("dont", "call"), ("no", "more", "texts"), ("no", "more", "messages"),
    ("wrong", "number"),
    ("no", "mas"), ("de", "baja"), ("no", "me", "escriba"), ("no", "me", "escribas"), ("no", "me", "envie"),
    ("no", "me", "envies"), ("no", "me", "llame"), ("no", "me", "llames"), ("numero", "equivocado"),
)
# Re-subscription and help only when the whole reply is the keyword: "we start Monday" is not a
# request to be texted again.
OPT_IN_REPLIES = frozenset({("start",), ("unstop",), ("subscribe",)})
HELP_REPLIES = frozenset({("help",), ("info",), ("ayuda",)})
# Backwards-compatible name: the per-se words of 47 CFR 64.1200(a)(10) and their equivalents.
OPT_OUT_KEYWORDS = OPT_OUT_WORDS


def text_words(text: str) -> tuple[str, ...]:
    """The words of a text: accents and case folded, apostrophes dropped ("don't" -> "dont"),
    anything else that is not a letter or digit a separator."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c)).replace("'", "").replace("\u2019", "")
    return tuple(re.findall(r"[a-z0-9]+", plain))


def classify_text(text: str) -> TextKeyword | None:
    """The keyword an inbound text carries (an opt-out wins over anything else), or None."""
    words = text_words(text)
    if any(word in OPT_OUT_WORDS for word in words):
        return TextKeyword.OPT_OUT
    for phrase in OPT_OUT_PHRASES:
        size = len(phrase)
        if any(words[i : i + size] == phrase for i in range(len(words) - size + 1)):
            return TextKeyword.OPT_OUT
    if words in OPT_IN_REPLIES:
        return TextKeyword.OPT_IN
    if words in HELP_REPLIES:
        return TextKeyword.HELP
    return None


def is_opt_out_keyword(text: str) -> bool:
    """Whether an SMS reply revokes consent (see `classify_text`)."""
    return classify_text(text) is TextKeyword.OPT_OUT


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
