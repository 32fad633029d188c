"""What the dialer does with a text a lead sends. Pure.

Every inbound text is kept on the lead's record and pushed to the lead's agent. Besides:
- a revocation (`classify_text`: STOP and its equivalents anywhere in the reply) opts the
  number out of every channel at once (`OptOuts`: PostgreSQL first, then Redis) and gets at
  most one confirmation, within 5 minutes, with no marketing (47 CFR 64.1200(a)(10)-(12));
- START/UNSTOP lifts a revocation that was itself made by text, and is kept as new consent
  evidence; a revocation made any other way (on a call, through the CRM) is not lifted by a
  text: a person must take new consent (the law lets the consumer give consent again, not a
  keyword undo a do-not-call request made on the phone);
- HELP is answered with the agency's name and contact, at most once per `HELP_GUARD_SECONDS`
  per number, so two automatic responders cannot text each other forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance_rules.optout import TextKeyword, classify_text

HELP_GUARD_SECONDS = 300.0


@dataclass(frozen=True)
class InboundFacts:
    """What the runtime knows about the sender when the text arrives."""

    confirmation_claimed: bool  # this text won the one confirmation (an atomic claim in Redis)
    help_answered_at: float | None  # the last HELP answer to this number
    opted_out_by_text_only: bool  # the number is opted out, and only by texted revocations


@dataclass(frozen=True)
class InboundPlan:
    keyword: TextKeyword | None
    opt_out: bool = False
    confirm_opt_out: bool = False
    opt_in: bool = False
    answer_help: bool = False


def keyword_of(body: str) -> TextKeyword | None:
    return classify_text(body)


def plan(body: str, facts: InboundFacts, now: float) -> InboundPlan:
    keyword = classify_text(body)
    match keyword:
        case TextKeyword.OPT_OUT:
            return InboundPlan(keyword, opt_out=True, confirm_opt_out=facts.confirmation_claimed)
        case TextKeyword.OPT_IN:
            return InboundPlan(keyword, opt_in=facts.opted_out_by_text_only)
        case TextKeyword.HELP:
            recent = facts.help_answered_at is not None and now - facts.help_answered_at < HELP_GUARD_SECONDS
            return InboundPlan(keyword, answer_help=not recent)
    return InboundPlan(keyword)
