"""The gate's rules for texts (channel sms), with explicit times, and the inbound keywords."""

from __future__ import annotations

from datetime import datetime

import pytest

from compliance_rules.model import (
    Channel,
    ConsentKind,
    ConsentRecord,
    ContactRequest,
    Decision,
    NumberFacts,
    TextKind,
)
from compliance_rules.optout import TextKeyword, classify_text
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import GateOptions, applicable_caps, decide, locate
from tests.compliance.helpers import BOOK, fresh_versions, utc

pytestmark = pytest.mark.timeout(30)

NY = "+12125550142"  # America/New_York
FL = "+13055550142"  # Florida: 8 a.m.-8 p.m., 3 sales calls or texts per 24 h
PEWC = ConsentRecord(ConsentKind.PEWC, utc("2026-01-01T00:00"))
MONDAY_NOON_NY = utc("2026-03-02T17:00")


def text(
    phone: str, at: datetime, kind: TextKind | None = TextKind.MARKETING, *, hits: tuple[str, ...] = (),
    consents: tuple[ConsentRecord, ...] = (PEWC,), attempts: tuple[datetime, ...] = (),
    policy: CampaignPolicy | None = None,
) -> Decision:
    request = ContactRequest(phone, lead_id="lead-1", consents=consents, channel=Channel.SMS, text_kind=kind)
    return decide(request, locate(request), NumberFacts(frozenset(hits), attempts), fresh_versions(at),
                  policy or CampaignPolicy(), BOOK, at, "d-1", GateOptions())


def codes(decision: Decision) -> set[str]:
    return {reason.code.value for reason in decision.reasons}


def test_a_marketing_text_with_written_consent_inside_the_window_is_allowed() -> None:
    decision = text(NY, MONDAY_NOON_NY)
    assert decision.allowed, decision.reasons
    assert decision.to_record()["channel"] == "sms" and decision.to_record()["text_kind"] == "marketing"
    assert decision.notices == ()  # no recording notice for a text


def test_a_marketing_text_needs_written_consent_whatever_the_campaign_says() -> None:
    decision = text(NY, MONDAY_NOON_NY, consents=())
    assert codes(decision) == {"consent_missing"}
    assert "64.1200(a)(2)" in decision.reasons[0].citation
    # A text of unstated kind is held to the marketing rules.
    assert codes(text(NY, MONDAY_NOON_NY, None, consents=())) == {"consent_missing"}


def test_a_reply_in_a_conversation_the_lead_started_is_not_marketing() -> None:
    assert text(NY, MONDAY_NOON_NY, TextKind.CONVERSATION, consents=()).allowed
    # ... but the lists and the window still apply.
    assert codes(text(NY, MONDAY_NOON_NY, TextKind.CONVERSATION, hits=("optout",))) == {"opted_out"}
    assert codes(text(NY, utc("2026-03-03T02:05"), TextKind.CONVERSATION)) == {"outside_calling_window"}


@pytest.mark.parametrize(("at", "allowed"), [("2026-03-03T01:57", True), ("2026-03-03T02:05", False)])
def test_texts_keep_the_federal_window(at: str, allowed: bool) -> None:
    decision = text(NY, utc(at))  # 20:57 and 21:05 in New York
    assert decision.allowed is allowed
    if not allowed:
        assert codes(decision) == {"outside_calling_window"}
        assert "64.1200(c)(1)" in decision.reasons[0].citation


def test_state_windows_and_caps_count_texts() -> None:
    assert codes(text(FL, utc("2026-03-03T01:05"))) == {"outside_calling_window"}  # 20:05 in Miami
    earlier = (utc("2026-03-02T14:00"), utc("2026-03-02T15:00"), utc("2026-03-02T16:00"))
    assert codes(text(FL, MONDAY_NOON_NY, attempts=earlier)) == {"frequency_cap"}
    # A conversation the lead started is not a sales text: no cap.
    assert text(FL, MONDAY_NOON_NY, TextKind.CONVERSATION, attempts=earlier).allowed
    request = ContactRequest(FL, channel=Channel.SMS)
    assert applicable_caps(locate(request), CampaignPolicy(), BOOK, MONDAY_NOON_NY, GateOptions(), Channel.SMS)


@pytest.mark.parametrize("kind", [TextKind.HELP_REPLY, TextKind.OPT_OUT_CONFIRMATION])
def test_a_text_the_consumer_asked_for_goes_to_an_opted_out_number_at_night(kind: TextKind) -> None:
    decision = text(NY, utc("2026-03-03T03:00"), kind, hits=("optout", "federal"), consents=())
    assert decision.allowed, decision.reasons
    assert [notice.code.value for notice in decision.notices] == ["service_text"]
    assert "64.1200(a)(12)" in decision.notices[0].citation


def test_a_service_text_still_needs_a_valid_number() -> None:
    assert codes(text("+1900555012", MONDAY_NOON_NY, TextKind.HELP_REPLY)) == {"invalid_number"}


def test_a_voice_only_state_rule_leaves_texts_alone() -> None:
    from dataclasses import replace

    from compliance_rules.model import Channel as C

    florida = [replace(rule, channels=frozenset({C.VOICE})) if rule.state == "FL" else rule for rule in BOOK.rules]
    book = replace(BOOK, rules=tuple(florida))
    request = ContactRequest(FL, lead_id="lead-1", consents=(PEWC,), channel=Channel.SMS)
    at = utc("2026-03-03T01:05")  # 20:05 in Miami: past Florida's 8 p.m., inside the federal 9 p.m.
    assert decide(request, locate(request), NumberFacts(), fresh_versions(at), CampaignPolicy(), book, at,
                  "d", GateOptions()).allowed


@pytest.mark.parametrize(
    ("reply", "keyword"),
    [
        ("STOP", TextKeyword.OPT_OUT), ("stop please", TextKeyword.OPT_OUT), ("Stop!!!", TextKeyword.OPT_OUT),
        ("UNSUBSCRIBE", TextKeyword.OPT_OUT), ("please Unsubscribe me.", TextKeyword.OPT_OUT),
        ("quit", TextKeyword.OPT_OUT), ("END", TextKeyword.OPT_OUT), ("revoke", TextKeyword.OPT_OUT),
        ("Opt Out", TextKeyword.OPT_OUT), ("opt-out", TextKeyword.OPT_OUT), ("OPTOUT", TextKeyword.OPT_OUT),
        ("cancel it", TextKeyword.OPT_OUT), ("don't text me again", TextKeyword.OPT_OUT),
        ("Wrong number", TextKeyword.OPT_OUT), ("ALTO", TextKeyword.OPT_OUT), ("Alto, por favor", TextKeyword.OPT_OUT),
        ("No más mensajes", TextKeyword.OPT_OUT), ("quiero darme de baja", TextKeyword.OPT_OUT),
        ("HELP STOP", TextKeyword.OPT_OUT),
        ("START", TextKeyword.OPT_IN), ("unstop", TextKeyword.OPT_IN), ("Start.", TextKeyword.OPT_IN),
        ("HELP", TextKeyword.HELP), ("help?", TextKeyword.HELP), ("Ayuda", TextKeyword.HELP),
        ("yes", None), ("\N{THUMBS UP SIGN}", None), ("we start monday", None), ("Who is this?", None), ("", None),
    ],
)
def test_inbound_keywords(reply: str, keyword: TextKeyword | None) -> None:
    assert classify_text(reply) is keyword
