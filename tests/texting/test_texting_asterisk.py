"""Texting on the real stack: texts through Asterisk (SIP MESSAGE over ARI) to the simulated
carrier's phones, which answer by rule (exchange 77P: 0 STOP, 1 "stop please", 3 HELP, 5 an
emoji, 7 a delivery failure; others only receive), with the gate, the CRM rows and Redis."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from compliance_rules.numbers import parse_number
from compliance_rules.rules import OPTOUT
from crm_bridge.store import TokenRole
from dialer.runtime.ids import text_confirmation_key
from tests.texting.conftest import TextingDialer, eventually, ny, phone_number

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def opted_out_everywhere(dialer: TextingDialer, phone: str) -> bool:
    in_redis = await dialer.services.dnc.redis.sismember(
        dialer.services.dnc.list_key(OPTOUT, parse_number(phone).npa), str(parse_number(phone).local))
    rows = await dialer.fetch("SELECT source FROM opt_outs WHERE phone = $1", phone)
    return bool(in_redis) and any(row["source"] == "sms_keyword" for row in rows)


async def test_a_text_carries_identification_and_stop_please_opts_out_everywhere_within_a_second(
    texting_dialer: TextingDialer,
) -> None:
    dialer = texting_dialer
    phone = phone_number("771")  # the phone replies "stop please"
    campaign_id = await dialer.texting_campaign("+18885550111")
    lead_id = await dialer.consenting_lead(phone)
    agent_id = await dialer.agent("agent1001")
    status, body = await dialer.post_text({"lead_id": lead_id, "campaign_id": campaign_id,
                                           "body": "Hi {first_name}, your quote is ready."})
    assert status == 202, body
    assert body["kind"] == "marketing" and body["status"] == "queued"

    received = await dialer.phone_receives(phone)
    seen_at = time.monotonic()
    assert received[0] == "Acme Insurance: Hi Dana, your quote is ready. Reply STOP to opt out."
    # The reply went out as the phone logged the text; both stores hold the opt-out within 1 s.
    waited = await eventually(lambda: opted_out_everywhere(dialer, phone), within=5.0)
    assert time.monotonic() - seen_at < 1.0, f"opt-out took {waited:.3f} s after the text reached the phone"

    # Exactly one confirmation, with no marketing; the phone's second "stop please" (to the
    # confirmation) gets none.
    await dialer.phone_receives(phone, 2)
    await asyncio.sleep(1.5)
    confirmations = dialer.received(phone)[1:]
    assert confirmations == ["Acme Insurance: you are opted out and will get no more texts or calls from us."]
    rows = await dialer.messages_of(lead_id)
    inbound = [m for m in rows if m.direction == "inbound"]
    assert [m.kind for m in inbound] == ["opt_out", "opt_out"] and inbound[0].body == "stop please"
    assert [m.kind for m in rows if m.direction == "outbound"] == ["marketing", "opt_out_confirmation"]
    lead = await dialer.services.store.get_lead(lead_id)
    assert lead is not None and all(c.revoked_at is not None for c in lead.consents if c.kind == "pewc")

    # The next call and the next text for the lead are blocked: opted_out.
    call = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                    headers=dialer.auth())
    assert call.status == 403 and "opted_out" in {r["code"] for r in (await call.json())["reasons"]}
    status, body = await dialer.post_text({"lead_id": lead_id, "campaign_id": campaign_id, "body": "One more thing"})
    assert status == 403 and "opted_out" in {r["code"] for r in body["reasons"]}
    assert len(dialer.received(phone)) == 2


async def test_a_text_at_21_05_lead_local_time_is_blocked(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("554")
    lead_id = await dialer.consenting_lead(phone)
    dialer.clock.now = ny(21, 5)
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: your quote is ready."})
    assert status == 403
    assert {r["code"] for r in body["reasons"]} == {"outside_calling_window"}
    await dialer.services.outbox.flush(5)
    decision = await dialer.fetch("SELECT channel, text_kind, allowed FROM compliance_decisions WHERE decision_id = $1::uuid",
                                  body["decision_id"])
    assert [dict(row) for row in decision] == [{"channel": "sms", "text_kind": "marketing", "allowed": False}]
    await asyncio.sleep(0.5)
    assert dialer.received(phone) == [] and await dialer.messages_of(lead_id) == []


async def test_a_marketing_text_without_written_consent_is_blocked(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("555")
    lead_id = await dialer.lead(phone, state="NY", zip="10001")
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: quote ready"})
    assert status == 403 and {r["code"] for r in body["reasons"]} == {"consent_missing"}
    assert dialer.received(phone) == []


async def test_help_is_answered_once_with_the_agency_and_its_number(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("773")  # the phone replies HELP (to everything)
    campaign_id = await dialer.texting_campaign("+18885550133")
    lead_id = await dialer.consenting_lead(phone)
    status, _ = await dialer.post_text({"lead_id": lead_id, "campaign_id": campaign_id,
                                        "body": "{agency_name}: your policy review is due."})
    assert status == 202
    received = await dialer.phone_receives(phone, 2)
    assert received[1] == "Acme Insurance: for help call (888) 555-0133. Reply STOP to opt out."
    await asyncio.sleep(1.5)  # its HELP to our answer gets no second answer
    assert len(dialer.received(phone)) == 2
    rows = await dialer.messages_of(lead_id)
    assert [m.kind for m in rows if m.direction == "outbound"] == ["marketing", "help_reply"]


async def test_a_failed_delivery_is_recorded_with_its_status(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("777")  # the carrier cannot deliver to this phone
    lead_id = await dialer.consenting_lead(phone)
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hello"})
    assert status == 202
    row = await dialer.message(body["message_id"], until=lambda m: m.delivery_status is not None)
    assert (row.status, row.delivery_status, row.transport) == ("sent", "undelivered", "sip")
    assert row.provider_message_id == body["message_id"]
    assert dialer.received(phone) == []
    delivered_phone = phone_number("556")
    other = await dialer.consenting_lead(delivered_phone)
    status, body = await dialer.post_text({"lead_id": other, "body": "Acme Insurance: hello"})
    row = await dialer.message(body["message_id"], until=lambda m: m.delivery_status is not None)
    assert row.delivery_status == "delivered" and row.delivered_at is not None


async def test_emoji_and_400_characters_are_segmented_and_counted(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("775")  # replies with an emoji
    lead_id = await dialer.consenting_lead(phone)
    agent_id = await dialer.agent("agent1002")
    await dialer.seed("lead_upsert", {"lead_id": lead_id, "owner_agent_id": agent_id})
    head, tail = "Acme Insurance: ", " Reply STOP to opt out."
    long_text = head + "x" * (400 - len(head) - len(tail)) + tail  # 400 GSM-7 characters
    async with dialer.services.agent_events.subscribe(agent_id) as events:
        status, body = await dialer.post_text({"lead_id": lead_id, "body": long_text, "kind": "marketing"})
        assert status == 202, body
        assert body["body"] == long_text and len(long_text) == 400
        assert (body["encoding"], body["segments"]) == ("gsm7", 3)
        assert (await dialer.phone_receives(phone))[0] == long_text
        pushed = await asyncio.wait_for(events.get(), 10)
    assert pushed["type"] == "text_received" and pushed["body"] == "\N{THUMBS UP SIGN}"
    assert pushed["lead"]["lead_id"] == lead_id
    inbound = [m for m in await dialer.messages_of(lead_id) if m.direction == "inbound"]
    assert [(m.body, m.encoding, m.segments, m.kind) for m in inbound] == [("\N{THUMBS UP SIGN}", "ucs2", 1, "reply")]
    # The lead answered: a conversation it joined, not one it started; a reply to it is marketing
    # only when asked; the emoji text itself counts as UCS-2.
    emoji_text = "Acme Insurance: great \N{SMILING FACE WITH SMILING EYES} " + "y" * 360
    status, body = await dialer.post_text({"lead_id": lead_id, "body": emoji_text, "kind": "marketing"})
    assert status == 202 and (body["encoding"], body["segments"]) == ("ucs2", 6)
    assert (await dialer.phone_receives(phone, 2))[1] == emoji_text


async def test_first_contact_moves_the_lead_and_a_lead_started_conversation_needs_no_consent(
    texting_dialer: TextingDialer,
) -> None:
    dialer = texting_dialer
    phone = phone_number("557")
    lead_id = await dialer.lead(phone, state="NY", zip="10001")  # no written consent
    await dialer.text_from_phone(phone, "Hi, can you send me the plan details?", "+18885550100")
    await eventually(lambda: _has_inbound(dialer, lead_id), within=5)
    lead = await dialer.services.store.get_lead(lead_id)
    assert lead is not None and lead.pipeline_stage.value == "contacted"
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Sure, here they are."})
    assert status == 202 and body["kind"] == "conversation" and body["body"] == "Sure, here they are."
    assert (await dialer.phone_receives(phone))[0] == "Sure, here they are."


async def _has_inbound(dialer: TextingDialer, lead_id: str) -> bool:
    return any(m.direction == "inbound" for m in await dialer.messages_of(lead_id))


async def test_start_after_a_texted_stop_resubscribes_and_is_kept_as_consent(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("558")
    lead_id = await dialer.consenting_lead(phone)
    await dialer.text_from_phone(phone, "Please STOP texting me.", "+18885550100")
    await eventually(lambda: opted_out_everywhere(dialer, phone), within=5)
    await dialer.phone_receives(phone)  # the confirmation
    await dialer.text_from_phone(phone, "START", "+18885550100")

    async def lifted() -> bool:
        number = parse_number(phone)
        member = await dialer.services.dnc.redis.sismember(dialer.services.dnc.list_key(OPTOUT, number.npa),
                                                           str(number.local))
        return not member
    await eventually(lifted, within=5)
    await dialer.services.outbox.flush(5)
    assert len(await dialer.fetch("SELECT * FROM opt_ins WHERE phone = $1", phone)) == 1
    lead = await dialer.services.store.get_lead(lead_id)
    assert lead is not None and any(c.kind == "sms_opt_in" and c.revoked_at is None for c in lead.consents)
    assert not await dialer.services.dnc.redis.exists(text_confirmation_key(dialer.services.dnc.prefix, phone))
    # Written consent is not restored by a keyword: a marketing text is still blocked. (The
    # gate's clock goes past the revocation, made on the real clock, inside the window.)
    dialer.clock.now = (datetime.now(UTC) + timedelta(days=1)).replace(hour=17, minute=0)
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hi", "kind": "marketing"})
    assert status == 403 and {r["code"] for r in body["reasons"]} == {"consent_missing"}


async def test_a_revocation_made_on_the_phone_is_not_lifted_by_start(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("559")
    await dialer.consenting_lead(phone)
    response = await dialer.client.post("/v1/opt-outs", json={"phone": phone, "source": "agent"}, headers=dialer.auth())
    assert response.status == 201
    await dialer.text_from_phone(phone, "START", "+18885550100")
    await asyncio.sleep(1.0)
    assert await dialer.services.dnc.redis.sismember(
        dialer.services.dnc.list_key(OPTOUT, parse_number(phone).npa), str(parse_number(phone).local))


async def test_a_queued_text_is_checked_again_and_not_sent_after_the_window_closes(
    texting_dialer: TextingDialer,
) -> None:
    dialer = texting_dialer
    dialer.texting.pacer.interval = 3.0  # one text per 3 s from this number
    phones = [phone_number("560"), phone_number("560")]
    leads = [await dialer.consenting_lead(phone) for phone in phones]
    dialer.clock.now = ny(20, 50)
    first = await dialer.post_text({"lead_id": leads[0], "body": "Acme Insurance: one"})
    second = await dialer.post_text({"lead_id": leads[1], "body": "Acme Insurance: two"})
    assert first[0] == second[0] == 202
    dialer.clock.now = ny(21, 1)  # the window closes while the second waits for its slot
    row = await dialer.message(second[1]["message_id"], until=lambda m: m.status == "blocked", within=10)
    assert row.status_detail == "outside_calling_window"
    assert str(row.compliance_decision_id) != second[1]["decision_id"]  # decided again
    assert dialer.received(phones[1]) == []
    assert await dialer.phone_receives(phones[0]) == ["Acme Insurance: one Reply STOP to opt out."]


async def test_sends_from_one_number_are_paced(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    dialer.texting.pacer.interval = 0.5
    phones = [phone_number("561") for _ in range(3)]
    ids = []
    for phone in phones:
        lead_id = await dialer.consenting_lead(phone)
        status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hi"})
        assert status == 202
        ids.append(body["message_id"])
    rows = [await dialer.message(message_id, until=lambda m: m.sent_at is not None) for message_id in ids]
    sent = sorted(row.sent_at for row in rows if row.sent_at)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    assert all(gap >= 0.45 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"body": ""}, 422, "empty_body", "body"),
        ({"body": "   "}, 422, "empty_body", "body"),
        ({"body": "Acme Insurance: " + "z" * 1984}, 422, "too_long", "body"),
        ({"phone": "+18005550199", "body": "Acme Insurance: hi"}, 422, "not_textable", "phone"),
        ({"phone": "+442071234567", "body": "Acme Insurance: hi"}, 422, "not_textable", "phone"),
        ({"body": "hi", "kind": "robocall"}, 422, "invalid_field", "kind"),
        # a typo in a merge field would go out as "Hi": refused, as in a template
        ({"body": "Acme Insurance: Hi {frist_name}"}, 422, "unknown_merge_field", "body"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_sent_or_written(
    texting_dialer: TextingDialer, body: dict[str, str], status: int, error: str, field: str
) -> None:
    dialer = texting_dialer
    phone = phone_number("562")
    lead_id = await dialer.consenting_lead(phone)
    request = {"lead_id": lead_id, **body} if "phone" not in body else body
    got_status, got = await dialer.post_text(request, headers={"Idempotency-Key": f"bad-{lead_id}"})
    assert (got_status, got["error"], got.get("field")) == (status, error, field), got
    await asyncio.sleep(0.3)
    assert dialer.received(phone) == [] and await dialer.messages_of(lead_id) == []
    token = await dialer.services.store.authenticate(dialer.crm_token)
    assert token is not None
    assert await dialer.services.store.get_idempotency_key(f"{token.token_id}:messages:bad-{lead_id}") is None


async def test_a_template_without_identification_is_refused(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    campaign_id = await dialer.texting_campaign("+18885550144")
    response = await dialer.client.post(f"/v1/campaigns/{campaign_id}/message-templates", headers=dialer.auth(),
                                        json={"name": "quote", "body": "Hi {first_name}, your quote is ready."})
    assert response.status == 422 and (await response.json())["error"] == "template_lacks_identification"
    await dialer.services.outbox.flush(5)
    assert await dialer.fetch("SELECT * FROM message_templates WHERE campaign_id = $1", campaign_id) == []
    response = await dialer.client.post(f"/v1/campaigns/{campaign_id}/message-templates", headers=dialer.auth(),
                                        json={"name": "quote", "body": "Hi {first_name}, {agency_name} here: quote ready"})
    assert response.status == 201
    template_id = (await response.json())["template_id"]
    await dialer.services.outbox.flush(5)
    phone = phone_number("563")
    lead_id = await dialer.consenting_lead(phone)
    status, body = await dialer.post_text({"lead_id": lead_id, "template_id": template_id})
    assert status == 202 and body["body"] == "Hi Dana, Acme Insurance here: quote ready Reply STOP to opt out."


async def test_posting_twice_with_one_key_sends_one_text(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    phone = phone_number("564")
    lead_id = await dialer.consenting_lead(phone)
    headers = {"Idempotency-Key": f"quote-{lead_id}"}
    first = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hi"}, headers=headers)
    again = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hi"}, headers=headers)
    # The replay is the first answer itself (issue 10, item 6), marked by a header, not in the body.
    assert first[0] == again[0] == 202 and again[1] == first[1]
    await dialer.phone_receives(phone)
    await asyncio.sleep(0.5)
    assert len(dialer.received(phone)) == 1


async def test_agents_text_as_themselves_and_read_their_leads(texting_dialer: TextingDialer) -> None:
    dialer = texting_dialer
    agent_id = await dialer.agent("agent1003")
    other_agent = await dialer.agent("agent1004")
    token = await dialer.token(TokenRole.AGENT, agent_id)
    other = await dialer.token(TokenRole.AGENT, other_agent)
    phone = phone_number("565")
    lead_id = await dialer.consenting_lead(phone, owner_agent_id=agent_id)
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hi"}, token=token)
    assert status == 202
    row = await dialer.message(body["message_id"])
    assert row.agent_id == agent_id
    mine = await dialer.client.get(f"/v1/leads/{lead_id}/messages", headers=dialer.auth(token))
    assert mine.status == 200 and [m["message_id"] for m in (await mine.json())["messages"]] == [body["message_id"]]
    theirs = await dialer.client.get(f"/v1/leads/{lead_id}/messages", headers=dialer.auth(other))
    assert theirs.status == 404
    status, _ = await dialer.post_text({"lead_id": lead_id, "agent_id": other_agent, "body": "x"}, token=token)
    assert status == 403
