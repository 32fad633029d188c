"""What a text says: campaign templates with merge fields, the identification and opt-out
wording of the first marketing text, and the service texts (HELP's answer, the confirmation of
a revocation). Pure.

- A marketing text must identify the sender (CTIA Messaging Principles and Best Practices, sender
  identification; 47 CFR 64.1200(b)(1) asks the same of prerecorded calls, at the beginning of
  the message): a template that names neither `{agency_name}` nor the agency is refused. The
  first marketing text of a conversation also says how to opt out ("Reply STOP to opt out";
  CTIA, opt-out instructions; 47 CFR 64.1200(b)(3) gives calls an opt-out mechanism).
- HELP is answered with the agency's name and a number to call (CTIA, HELP response).
- The confirmation of a revocation only confirms it: no marketing, 47 CFR 64.1200(a)(12).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MERGE_FIELDS = ("first_name", "last_name", "agency_name", "agency_phone", "agent_name")
_FIELD = re.compile(r"\{([^{}]*)\}")
OPT_OUT_WORDING = "Reply STOP to opt out."
MAX_TEMPLATE_CHARACTERS = 1600


class TemplateError(ValueError):
    """A template or body the dialer refuses; `reason` is the machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Sender:
    """Who the texts come from, as the lead must be told: a campaign's agency (seller) name and
    the number HELP gives."""

    agency_name: str
    agency_phone: str  # E.164


def merge_fields(body: str) -> list[str]:
    return _FIELD.findall(body)


def check_template(body: str, sender: Sender) -> None:
    """Refuse a template that is empty, too long, uses an unknown merge field or does not
    identify the agency."""
    if not body.strip():
        raise TemplateError("empty_body", "the template has no text")
    if len(body) > MAX_TEMPLATE_CHARACTERS:
        raise TemplateError("too_long", f"a template has at most {MAX_TEMPLATE_CHARACTERS} characters")
    check_merge_fields(body)
    if not identifies(body, sender):
        raise TemplateError("template_lacks_identification",
                            "a marketing template must name the agency: put {agency_name} (or the agency's name) in it "
                            "(CTIA sender identification)")


def check_merge_fields(body: str) -> None:
    """Refuse a merge field the dialer does not fill: rendered as nothing, `Hi {frist_name}` would
    go out to a person as "Hi"."""
    unknown = [name for name in merge_fields(body) if name not in MERGE_FIELDS]
    if unknown:
        raise TemplateError("unknown_merge_field",
                            f"unknown merge field {{{unknown[0]}}}; use {', '.join('{' + f + '}' for f in MERGE_FIELDS)}")


def identifies(body: str, sender: Sender) -> bool:
    return "{agency_name}" in body or sender.agency_name.casefold() in body.casefold()


def render(body: str, values: Mapping[str, str | None]) -> str:
    """The template with its merge fields filled (a missing value leaves nothing, spaces folded)."""
    filled = _FIELD.sub(lambda m: values.get(m.group(1)) or "", body)
    return re.sub(r" +([,.!?;:])", r"\1", re.sub(r"[ \t]{2,}", " ", filled)).strip()


def has_opt_out_wording(body: str) -> bool:
    return re.search(r"\bstop\b", body, re.IGNORECASE) is not None


def first_marketing_text(body: str, sender: Sender) -> str:
    """The first marketing text of a conversation: named and with the opt-out wording (added
    when the body lacks them)."""
    text = body if identifies(body, sender) else f"{sender.agency_name}: {body}"
    if not has_opt_out_wording(text):
        text = f"{text.rstrip()} {OPT_OUT_WORDING}"
    return text


def display_number(e164: str) -> str:
    """+12125550100 -> (212) 555-0100."""
    digits = e164.removeprefix("+1")
    if len(digits) != 10 or not digits.isdigit():
        return e164
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def help_reply(sender: Sender) -> str:
    return (f"{sender.agency_name}: for help call {display_number(sender.agency_phone)}. "
            f"{OPT_OUT_WORDING}")


def opt_out_confirmation(sender: Sender) -> str:
    return f"{sender.agency_name}: you are opted out and will get no more texts or calls from us."
