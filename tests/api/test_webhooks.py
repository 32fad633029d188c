"""Webhooks against the real PostgreSQL and a real HTTP receiver: a receiver that is down for a
while (DIALER_TEST_WEBHOOK_DOWN_SECONDS, default 12 s, and 2 minutes in the test marked `long`) then up gets every
event once by id, in order per call; signatures check with the documented code and a tampered
body does not; a rotated secret signs beside the previous one; replays and the delivery log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from crm_bridge.store import TokenRole
from crm_bridge.webhooks import Claimed
from dialer.api.webhooks import WEBHOOK_EVENT_MODELS, EventName
from dialer.app import openapi_document
from dialer.webhooks import WebhookDispatcher, WebhookOptions
from tests.api.conftest import Api
from tests.webhook_receiver import Receiver, documented_check

pytestmark = pytest.mark.integration
DOWN_SECONDS = float(os.environ.get("DIALER_TEST_WEBHOOK_DOWN_SECONDS", "12"))
ALL_EVENTS = ["call.ended", "disposition.created", "recording.ready", "lead.opted_out", "lead.stage_changed",
              "message.received"]


@contextlib.asynccontextmanager
async def dispatching(api: Api, **options: Any) -> AsyncIterator[WebhookDispatcher]:
    settings: dict[str, Any] = {"public_url": str(api.client.make_url("")).rstrip("/"), "poll_interval": 0.2,
                                "first_retry": 0.5, "most_retry": 2.0, "timeout": 3.0, **options}
    dispatcher = WebhookDispatcher(api.pg_dsn, WebhookOptions(**settings))
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The run's database is shared: leave no subscription (and its queue) to the next test.
        async with api.store.acquire() as conn:
            await conn.execute("DELETE FROM webhook_subscriptions")


async def _subscribe(api: Api, admin: str, url: str, events: list[str] | None = None) -> dict[str, Any]:
    async with api.client.post("/v1/webhooks", json={"url": url, "event_types": events or ALL_EVENTS},
                               headers=api.auth(admin)) as response:
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def _ended_call(api: Api) -> str:
    call_id = f"call-{uuid.uuid4().hex[:12]}"
    started = datetime.now(UTC)
    base = {"call_id": call_id, "direction": "outbound", "lead_id": api.lead_id, "agent_id": api.agent_id,
            "lead_number": api.phone, "requested_at": started}
    await api.outbox.put_many([
        ("call", {**base, "version": 1}),
        ("call", {**base, "version": 2, "lead_answered_at": started + timedelta(seconds=3),
                  "ended_at": started + timedelta(seconds=20), "outcome": "answered", "talk_seconds": 17.0}),
    ])
    return call_id


async def _dispose(api: Api, call_id: str, code: str = "contacted") -> None:
    async with api.client.post(f"/v1/calls/{call_id}/disposition", json={"code": code},
                               headers=api.auth(api.agent)) as response:
        assert response.status == 202, await response.text()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("down_seconds", [DOWN_SECONDS, pytest.param(120.0, marks=pytest.mark.long, id="2min")])
async def test_a_receiver_down_for_a_while_then_up_gets_every_event_once_in_order_per_call(
    api: Api, down_seconds: float
) -> None:
    admin = await api.token(TokenRole.ADMIN)
    receiver = Receiver()
    subscription = await _subscribe(api, admin, receiver.url)
    check = documented_check()
    async with dispatching(api):
        # Down from the start: events keep coming (calls end, agents dispose) while it is.
        calls = []
        for _ in range(3):
            calls.append(await _ended_call(api))
        assert await api.outbox.flush(10)
        for call_id in calls:
            await _dispose(api, call_id)
        await asyncio.sleep(down_seconds / 2)
        for _ in range(2):
            calls.append(await _ended_call(api))
        assert await api.outbox.flush(10)
        for call_id in calls[3:]:
            await _dispose(api, call_id, "not_interested")
        assert await api.outbox.flush(10)
        async with api.client.get(f"/v1/webhooks/{subscription['subscription_id']}/deliveries",
                                  params={"status": "pending"}, headers=api.auth(admin)) as response:
            pending = (await response.json())["deliveries"]
        assert len(pending) >= 10 and any(item["attempts"] >= 2 for item in pending)
        assert all(item["last_error"] for item in pending if item["attempts"])
        await asyncio.sleep(down_seconds / 2)
        assert receiver.received == []

        await receiver.up()
        try:
            expected = {f"evt_call_ended_{call_id}" for call_id in calls}
            await receiver.wait_for(lambda: expected <= {r.headers["webhook-id"] for r in receiver.received} and
                                    len(receiver.of_type("disposition.created")) >= len(calls), 60,
                                    "every event after the receiver came back")
            await asyncio.sleep(1.0)  # anything sent twice would arrive now
        finally:
            await receiver.down()

    ids = Counter(item.headers["webhook-id"] for item in receiver.received)
    assert max(ids.values()) == 1, f"an event arrived twice: {ids.most_common(1)}"
    for item in receiver.received:
        assert check(subscription["secret"], item.headers, item.body)
        assert item.message["id"] == item.headers["webhook-id"]
    for call_id in calls:
        kinds = [item.message["type"] for item in receiver.received
                 if item.message["data"].get("call_id") == call_id]
        assert kinds[:2] == ["call.ended", "disposition.created"], (call_id, kinds)
        assert set(kinds[2:]) <= {"lead.stage_changed"}
    ended = receiver.of_type("call.ended")[0].message["data"]
    assert ended["outcome"] == "answered" and ended["talk_seconds"] == 17.0 and ended["ended_at"].endswith("Z")
    # The first disposition moved the lead on (calls' events interleave; each call's are in order).
    changed = [item.message["data"] for item in receiver.of_type("lead.stage_changed")]
    assert any(found["stage_before"] == "new_lead" and found["stage_after"] == "contacted" for found in changed)


@pytest.mark.timeout(60)
async def test_a_tampered_delivery_fails_the_documented_check_and_a_rotated_secret_signs_beside_the_old(
    api: Api,
) -> None:
    admin = await api.token(TokenRole.ADMIN)
    receiver = Receiver()
    await receiver.up()
    check = documented_check()
    try:
        subscription = await _subscribe(api, admin, receiver.url, ["call.ended"])
        subscription_id = subscription["subscription_id"]
        async with dispatching(api):
            call_id = await _ended_call(api)
            assert await api.outbox.flush(10)
            await receiver.wait_for(lambda: len(receiver.received) == 1, 20, "call.ended")
            first = receiver.received[0]
            assert first.message["data"]["call_id"] == call_id
            assert check(subscription["secret"], first.headers, first.body)
            tampered = first.body.replace(b'"answered"', b'"abandoned"')
            assert tampered != first.body and not check(subscription["secret"], first.headers, tampered)
            forged = {**first.headers, "webhook-timestamp": str(int(first.headers["webhook-timestamp"]) + 1)}
            assert not check(subscription["secret"], forged, first.body)
            assert not check("whsec_" + "A" * 32, first.headers, first.body)

            async with api.client.post(f"/v1/webhooks/{subscription_id}/rotate-secret", json={},
                                       headers=api.auth(admin)) as response:
                assert response.status == 200
                rotated = (await response.json())["secret"]
            assert rotated != subscription["secret"]
            async with api.client.post(f"/v1/webhooks/{subscription_id}/replay",
                                       json={"event_id": f"evt_call_ended_{call_id}"},
                                       headers=api.auth(admin)) as response:
                assert response.status == 202 and (await response.json())["queued"] == 1
            await receiver.wait_for(lambda: len(receiver.received) == 2, 20, "the replay")
            again = receiver.received[1]
            assert again.headers["webhook-id"] == first.headers["webhook-id"]  # the same event, de-duplicable
            assert len(again.headers["webhook-signature"].split()) == 2
            assert check(rotated, again.headers, again.body) and check(subscription["secret"], again.headers,
                                                                       again.body)
            async with api.client.get(f"/v1/webhooks/{subscription_id}/deliveries",
                                      headers=api.auth(admin)) as response:
                log = (await response.json())["deliveries"]
            original = next(item for item in log if not item["replay"])
            async with api.client.get(f"/v1/webhooks/{subscription_id}/deliveries/{original['delivery_id']}",
                                      headers=api.auth(admin)) as response:
                detail = await response.json()
            assert detail["status"] == "delivered" and detail["attempt_log"][0]["status_code"] == 204
            # A time range: every call.ended of the last hour (this one among them) is queued again.
            since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            async with api.client.post(f"/v1/webhooks/{subscription_id}/replay", json={"since": since},
                                       headers=api.auth(admin)) as response:
                assert (await response.json())["queued"] >= 1
            await receiver.wait_for(lambda: len([r for r in receiver.received
                                                 if r.headers["webhook-id"] == first.headers["webhook-id"]]) == 3,
                                    30, "the range replay")
    finally:
        await receiver.down()


@pytest.mark.timeout(60)
async def test_a_delivery_that_never_succeeds_is_parked_and_visible(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    receiver = Receiver()  # never up
    subscription = await _subscribe(api, admin, receiver.url, ["call.ended"])
    async with dispatching(api, give_up_after=2.0):
        await _ended_call(api)
        assert await api.outbox.flush(10)
        async with asyncio.timeout(20):
            while True:
                async with api.client.get(f"/v1/webhooks/{subscription['subscription_id']}/deliveries",
                                          params={"status": "parked"}, headers=api.auth(admin)) as response:
                    parked = (await response.json())["deliveries"]
                if parked:
                    break
                await asyncio.sleep(0.3)
    assert parked[0]["attempts"] >= 2 and "Connect" in parked[0]["last_error"]


def test_the_webhook_commands_subscribe_rotate_list_and_delete(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dialer.cli import main

    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_PG_DSN", pg_dsn)
    assert main(["webhook", "create", "https://crm.example.com/hooks", "--event", "call.ended",
                 "--event", "lead.opted_out"]) == 0
    created = json.loads(capsys.readouterr().out)
    subscription_id, secret = created["subscription_id"], created["secret"]
    assert secret.startswith("whsec_")
    assert main(["webhook", "create", "ftp://crm.example.com", "--event", "call.ended"]) == 2
    assert "url" in capsys.readouterr().err
    assert main(["webhook", "create", "https://crm.example.com", "--event", "call.started"]) == 2
    assert main(["webhook", "rotate-secret", subscription_id]) == 0
    rotated = json.loads(capsys.readouterr().out)["secret"]
    assert rotated != secret
    assert main(["webhook", "disable", subscription_id]) == 0
    assert json.loads(capsys.readouterr().out)["active"] is False
    assert main(["webhook", "deliveries", subscription_id]) == 0
    assert capsys.readouterr().out == ""
    assert main(["webhook", "replay", subscription_id, "--since", "2026-01-01T00:00Z"]) == 0
    assert capsys.readouterr().out.endswith("deliveries queued\n")
    assert main(["webhook", "delete", subscription_id]) == 0
    assert main(["webhook", "show", subscription_id]) == 1
    assert main(["changes", "webhook", subscription_id]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [json.loads(line)["action"] for line in lines] == ["create", "rotate_secret", "update", "delete"]
    assert all("secret" not in (json.loads(line)["after"] or {}) for line in lines)


@pytest.mark.timeout(60)
async def test_an_opt_out_is_pushed_and_an_endpoint_that_never_answers_slows_nothing(api: Api) -> None:
    """A black-hole endpoint (accepts connections, never answers) holds at most `concurrency`
    requests, each until its timeout; the API answers as fast as ever meanwhile."""
    admin = await api.token(TokenRole.ADMIN)
    hung: list[asyncio.Event] = []

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stop = asyncio.Event()
        hung.append(stop)
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await stop.wait()
        writer.close()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver = Receiver()
    await receiver.up()
    try:
        await _subscribe(api, admin, f"http://127.0.0.1:{port}/hooks", ["call.ended"])
        subscription = await _subscribe(api, admin, receiver.url, ["lead.opted_out"])
        async with dispatching(api, concurrency=4, per_endpoint=2, timeout=5.0) as dispatcher:
            for _ in range(12):
                await _ended_call(api)
            assert await api.outbox.flush(10)
            await asyncio.sleep(1.0)
            assert 1 <= len(hung) <= 2  # bounded: the rest wait in the queue, not in memory or sockets
            started = asyncio.get_running_loop().time()
            async with api.client.post("/v1/opt-outs", json={"phone": "(646) 555-0199", "source": "api"},
                                       headers=api.auth(api.crm)) as response:
                assert response.status == 201
            assert asyncio.get_running_loop().time() - started < 1.0
            assert await api.outbox.flush(10)
            await receiver.wait_for(lambda: bool(receiver.of_type("lead.opted_out")), 20, "lead.opted_out")
            assert dispatcher.options.concurrency == 4
        opted = receiver.of_type("lead.opted_out")[0]
        assert documented_check()(subscription["secret"], opted.headers, opted.body)
        assert opted.message["data"]["phone"] == "+16465550199" and opted.message["data"]["source"] == "api"
    finally:
        for stop in hung:
            stop.set()
        server.close()
        await receiver.down()


@pytest.mark.timeout(60)
async def test_a_text_from_a_lead_is_pushed_as_message_received(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    receiver = Receiver()
    await receiver.up()
    try:
        subscription = await _subscribe(api, admin, receiver.url, ["message.received"])
        async with dispatching(api):
            message_id = f"msg-{uuid.uuid4().hex[:12]}"
            await api.outbox.put("message", {
                "message_id": message_id, "version": 1, "direction": "inbound", "kind": "reply",
                "lead_id": api.lead_id, "from_number": api.phone, "to_number": "+18885550100",
                "body": "Is Tuesday fine?", "encoding": "gsm7", "segments": 1, "transport": "sip",
                "status": "received", "created_at": datetime.now(UTC)})
            # An outbound text is no `message.received` (its outcome is `message.sent`, ...).
            await api.outbox.put("message", {
                "message_id": f"msg-{uuid.uuid4().hex[:12]}", "version": 1, "direction": "outbound",
                "kind": "conversation", "lead_id": api.lead_id, "from_number": "+18885550100",
                "to_number": api.phone, "body": "Tuesday at 3?", "encoding": "gsm7", "segments": 1,
                "transport": "sip", "status": "sent", "created_at": datetime.now(UTC)})
            assert await api.outbox.flush(10)
            await receiver.wait_for(lambda: bool(receiver.received), 20, "message.received")
            await asyncio.sleep(1.0)
        assert [item.message["type"] for item in receiver.received] == ["message.received"]
        data = receiver.received[0].message["data"]
        assert data["message_id"] == message_id and data["body"] == "Is Tuesday fine?"
        assert documented_check()(subscription["secret"], receiver.received[0].headers, receiver.received[0].body)
    finally:
        await receiver.down()


@pytest.mark.timeout(60)
async def test_a_new_leads_first_text_moves_it_to_contacted_once_and_says_so(api: Api) -> None:
    """A new lead that writes first is contacted, as a call's contact makes it: one
    `lead.stage_changed`, however many texts follow and however often their records are applied."""
    admin = await api.token(TokenRole.ADMIN)
    receiver = Receiver()
    await receiver.up()

    def text(message_id: str, body: str) -> dict[str, object]:
        return {"message_id": message_id, "version": 1, "direction": "inbound", "kind": "reply",
                "lead_id": api.lead_id, "from_number": api.phone, "to_number": "+18885550100", "body": body,
                "encoding": "gsm7", "segments": 1, "transport": "sip", "status": "received",
                "created_at": datetime.now(UTC)}

    try:
        await _subscribe(api, admin, receiver.url, ["lead.stage_changed"])
        async with dispatching(api):
            first, second = f"msg-{uuid.uuid4().hex[:12]}", f"msg-{uuid.uuid4().hex[:12]}"
            await api.outbox.put("message", text(first, "Hi, is this about Medicare?"))
            await api.outbox.put("message", text(first, "Hi, is this about Medicare?"))  # applied again
            await api.outbox.put("message", text(second, "Call me after 5"))
            assert await api.outbox.flush(10)
            await receiver.wait_for(lambda: bool(receiver.received), 20, "lead.stage_changed")
            await asyncio.sleep(1.0)
        assert [item.message["type"] for item in receiver.received] == ["lead.stage_changed"]
        data = receiver.received[0].message["data"]
        assert data == {"lead_id": api.lead_id, "message_id": first, "call_id": None, "disposition_id": None,
                        "stage_before": "new_lead", "stage_after": "contacted"}
        lead = await api.store.get_lead(api.lead_id)
        assert lead is not None and lead.pipeline_stage == "contacted"
    finally:
        await receiver.down()


@pytest.mark.timeout(90)
async def test_dead_endpoints_with_a_backlog_never_starve_a_live_one(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    dead = [Receiver() for _ in range(3)]  # never up: every attempt is refused, then retried
    for receiver in dead:
        await _subscribe(api, admin, receiver.url, ["call.ended"])
    live = Receiver()
    await live.up()
    try:
        await _subscribe(api, admin, live.url, ["call.ended"])
        async with dispatching(api, concurrency=4, per_endpoint=2):
            calls = [await _ended_call(api) for _ in range(60)]
            assert await api.outbox.flush(20)
            expected = {f"evt_call_ended_{call_id}" for call_id in calls}
            await live.wait_for(lambda: expected <= {r.headers["webhook-id"] for r in live.received}, 40,
                                "the live endpoint's events while three dead ones retry")
    finally:
        await live.down()


@pytest.mark.timeout(60)
async def test_every_event_types_data_built_from_real_rows_is_what_the_openapi_document_says(api: Api) -> None:
    """Each event type's `data`, made by crm_bridge/webhooks.py from rows the outbox applies and
    serialized as the dispatcher sends it, validates (strictly) against the body the OpenAPI
    document's `webhooks` entry of that type points at: a field added, renamed or retyped on
    either side fails here, not in a CRM's generated client."""
    suffix = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    lead, phone, sender = f"lead-w{suffix}", "+12125550142", "+18885550100"
    calls, disposition, recording = [f"call-w1{suffix}", f"call-w2{suffix}"], f"dsp-w{suffix}", f"rec-w{suffix}"
    opt_out, inbound, campaign = f"opt-w{suffix}", f"msg-in{suffix}", f"cmp-w{suffix}"
    outcomes = ["sent", "undelivered", "failed", "blocked", "expired", "canceled"]
    texts = {outcome: f"msg-{outcome[:4]}{suffix}" for outcome in outcomes}

    def call(call_id: str, version: int, **extra: Any) -> tuple[str, dict[str, Any]]:
        return ("call", {"call_id": call_id, "version": version, "direction": "outbound", "lead_id": lead,
                         "agent_id": api.agent_id, "campaign_id": campaign, "lead_number": phone,
                         "caller_id": sender, "requested_at": now, **extra})

    def text(outcome: str) -> tuple[str, dict[str, Any]]:
        status = "sent" if outcome == "undelivered" else outcome
        return ("message", {"message_id": texts[outcome], "version": 1, "direction": "outbound",
                            "kind": "conversation", "lead_id": api.lead_id, "agent_id": api.agent_id,
                            "campaign_id": campaign, "template_id": f"tpl-w{suffix}",
                            "compliance_decision_id": str(uuid.uuid4()),
                            "from_number": sender, "to_number": api.phone, "body": f"Acme: {outcome}",
                            "encoding": "gsm7", "segments": 1, "transport": "http",
                            "provider_message_id": f"SM{outcome}{suffix}", "status": status,
                            "status_detail": None if status == "sent" else f"why {outcome}",
                            "requested_by": api.agent_id, "created_at": now,
                            "sent_at": now if status == "sent" else None})

    def receipt(outcome: str, status: str) -> tuple[str, dict[str, Any]]:
        return ("message_receipt", {"receipt_id": f"rcp-{outcome[:4]}{suffix}", "message_id": texts[outcome],
                                    "provider_message_id": f"SM{outcome}{suffix}", "status": status,
                                    "error": None if status == "delivered" else "30003", "received_at": now})

    ended = {"lead_answered_at": now + timedelta(seconds=3), "bridged_at": now + timedelta(seconds=3),
             "ended_at": now + timedelta(seconds=40), "outcome": "answered", "ring_seconds": 3.0,
             "talk_seconds": 37.0, "total_seconds": 40.0, "amd_result": "HUMAN", "safe_harbor_played": False,
             "abandoned": False}
    await api.outbox.put_many([
        ("lead_upsert", {"lead_id": lead, "first_name": "Eve", "phones": [phone], "state": "NY"}),
        # The first call ends before its disposition (`disposition` null), the second after it.
        call(calls[0], 1), call(calls[0], 2, recording_id=recording, **ended),
        call(calls[1], 1),
        ("disposition", {"disposition_id": disposition, "call_id": calls[1], "lead_id": lead,
                         "agent_id": api.agent_id, "campaign_id": campaign, "code": "callback", "notes": "after 5",
                         "callback_at": now + timedelta(days=1), "disposed_at": now + timedelta(seconds=50)}),
        call(calls[1], 2, **ended),
        ("recording", {"recording_id": recording, "call_id": calls[0], "lead_id": lead,
                       "storage_uri": f"file:///archive/{recording}.ogg", "format": "ogg",
                       "duration_seconds": 40.5, "size_bytes": 81234, "sha256": "ab" * 32,
                       "recorded_at": now + timedelta(seconds=41)}),
        ("opt_out", {"opt_out_id": opt_out, "phone": phone, "source": "agent", "lead_id": lead,
                     "call_id": calls[0], "created_at": now}),
        # The fixture's lead is new: its first text moves it to contacted.
        ("message", {"message_id": inbound, "version": 1, "direction": "inbound", "kind": "reply",
                     "lead_id": api.lead_id, "campaign_id": campaign, "from_number": api.phone,
                     "to_number": sender, "body": "Hi",
                     "encoding": "gsm7", "segments": 1, "transport": "sip", "status": "received",
                     "created_at": now}),
        *(text(outcome) for outcome in outcomes),
        receipt("sent", "delivered"), receipt("undelivered", "undelivered"),
    ])
    assert await api.outbox.flush(10)
    expected = {f"evt_call_ended_{calls[0]}", f"evt_call_ended_{calls[1]}", f"evt_disposition_{disposition}",
                f"evt_stage_{disposition}", f"evt_recording_{recording}", f"evt_opted_out_{opt_out}",
                f"evt_message_{inbound}", f"evt_stage_text_{inbound}",
                f"evt_message_sent_{texts['sent']}", f"evt_message_delivered_{texts['sent']}",
                f"evt_message_sent_{texts['undelivered']}", f"evt_message_undelivered_{texts['undelivered']}",
                *(f"evt_message_{outcome}_{texts[outcome]}" for outcome in outcomes[2:])}
    async with api.store.acquire() as conn:
        rows = await conn.fetch("SELECT event_id, event_type, occurred_at, payload FROM webhook_events "
                                "WHERE event_id = ANY($1::text[])", sorted(expected))
    assert {row["event_id"] for row in rows} == expected
    assert {row["event_type"] for row in rows} == set(get_args(EventName)), "an event type left unchecked"

    document = openapi_document()
    schemas = document["components"]["schemas"]
    dispatcher = WebhookDispatcher(api.pg_dsn, WebhookOptions(public_url="https://dialer.example"))
    by_id: dict[str, dict[str, Any]] = {}
    # A null checks no type: each documented field carries a value in at least one event of its type.
    valued: dict[str, set[str]] = {}
    fields: dict[str, set[str]] = {}
    for row in rows:
        payload = row["payload"]
        claimed = Claimed(delivery_id=1, subscription_id="whk-x", url="https://crm.example/hooks", secrets=(),
                          event_id=row["event_id"], event_type=row["event_type"], occurred_at=row["occurred_at"],
                          payload=json.loads(payload) if isinstance(payload, str) else payload, attempts=0,
                          created_at=now)
        body = dispatcher.body(claimed)
        model = WEBHOOK_EVENT_MODELS[row["event_type"]]
        entry = document["webhooks"][row["event_type"]]["post"]["requestBody"]["content"]["application/json"]
        assert entry["schema"]["$ref"].rsplit("/", 1)[-1] == model.__name__
        data_schema = schemas[model.__name__]["properties"]["data"]
        assert "$ref" in data_schema, f"{row['event_type']}: data is untyped"
        # Every field the schema lists arrives, and nothing else (`extra="forbid"`), typed as documented.
        model.model_validate_json(body, strict=True)
        data = by_id[row["event_id"]] = json.loads(body)["data"]
        assert set(data) == set(schemas[data_schema["$ref"].rsplit("/", 1)[-1]]["properties"])
        data_model = model.model_fields["data"].annotation
        assert isinstance(data_model, type)
        valued.setdefault(data_model.__name__, set()).update(name for name, value in data.items() if value is not None)
        fields[data_model.__name__] = set(data_model.model_fields)
    assert {name: fields[name] - valued[name] for name in fields} == {name: set() for name in fields}
    first, second = by_id[f"evt_call_ended_{calls[0]}"], by_id[f"evt_call_ended_{calls[1]}"]
    assert first["disposition"] is None
    assert first["recording_url"] == f"https://dialer.example/v1/recordings/{recording}/audio"
    assert second["disposition"]["disposition_id"] == disposition and second["recording_url"] is None
    assert by_id[f"evt_stage_{disposition}"]["message_id"] is None
    assert by_id[f"evt_stage_text_{inbound}"]["disposition_id"] is None
