"""The HTTP API as a CRM integrator meets it, at its edges, against `dialer serve`'s own services
(the real Asterisk, PostgreSQL and Redis): an unknown agent's event stream is a 404 before any
upgrade; an agent with no SIP endpoint is checked on the `PJSIP/<agent_id>` it will be called on;
bad input found by walking README.md and docs/api.md (report days without a range, a body sent
to an operation that takes none, a body not compressed as its Content-Encoding says, a byte order
mark) gets a 4xx problem naming the field; a `Location` followed at once finds what was accepted;
a webhook delivery cut off by a stop is awaited and sent again after its lease; the background
tasks of the API (the event streams' session check, the lead-import worker) are owned, awaited
and log their failures."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from crm_bridge.store import TokenRole
from dialer.api import events
from dialer.api.crm import ACCEPTED_CALLS, AcceptedCalls
from dialer.api.events import SessionWatch, agent_message
from dialer.api.openapi import asyncapi_document
from dialer.app import openapi_document
from dialer.provision.ports import free_local_port
from dialer.tasks import start_task, stop_tasks
from dialer.webhooks import WebhookDispatcher, WebhookOptions
from tests.api.conftest import Api
from tests.controller.conftest import Dialer
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WEBSOCKET_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
# A browser endpoint of the provisioned Asterisk that no other test uses as an agent id.
ENDPOINT_AS_AGENT_ID = "agent1013-web"


async def _send(client: Any, method: str, path: str, token: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    async with client.request(method, path, data=data, headers=sent) as response:
        text = await response.text()
        if response.status >= 400:
            assert response.content_type == "application/problem+json", (response.status, text)
        return response.status, json.loads(text) if text and "json" in response.content_type else text


# ---- agents: the event stream and the default endpoint -------------------------------------------
async def test_an_unknown_agents_event_stream_is_a_404_before_the_upgrade(dialer: Dialer) -> None:
    supervisor = await dialer.token(TokenRole.SUPERVISOR)
    # Before: the WebSocket opened (101) and sent `subscribed` for an agent no one could ever be.
    got, body = await _send(dialer.client, "GET", "/v1/agents/nobody-here/events", supervisor,
                            headers=WEBSOCKET_UPGRADE)
    assert (got, body["error"], body["field"]) == (404, "agent_not_found", "agent_id"), body
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await dialer.client.ws_connect("/v1/agents/nobody-here/events", headers=dialer.auth(supervisor))
    assert refused.value.status == 404
    # The same answer as the agent's other endpoints give, from the same helper.
    got, state = await _send(dialer.client, "GET", "/v1/agents/nobody-here/state", supervisor)
    assert (got, state["error"], state["field"]) == (404, "agent_not_found", "agent_id")
    # A known agent's stream still opens, for its own token as for a supervisor's.
    agent_id = await dialer.agent("agent1016")
    for token in (supervisor, await dialer.token(TokenRole.AGENT, agent_id)):
        async with dialer.client.ws_connect(f"/v1/agents/{agent_id}/events", headers=dialer.auth(token)) as socket:
            first = await asyncio.wait_for(socket.receive_json(), 5)
            assert (first["type"], first["agent_id"]) == ("subscribed", agent_id)
    # An agent token for another agent is still refused first (no probing for ids).
    other = await dialer.token(TokenRole.AGENT, agent_id)
    got, body = await _send(dialer.client, "GET", "/v1/agents/nobody-here/events", other, headers=WEBSOCKET_UPGRADE)
    assert (got, body["error"]) == (403, "forbidden")


async def test_an_agent_without_an_endpoint_is_checked_on_the_one_it_will_be_called_on(dialer: Dialer) -> None:
    admin = await dialer.token(TokenRole.ADMIN)
    store = dialer.services.store
    # No endpoint: the agent would be called on PJSIP/<agent_id>, which Asterisk does not have.
    missing = f"qa-nophone-{dialer.suffix}"
    got, body = await _send(dialer.client, "POST", "/v1/agents", admin, {"agent_id": missing, "name": "No Phone"})
    assert (got, body["error"], body["field"]) == (422, "sip_endpoint_unknown", "sip_endpoint"), body
    assert f"PJSIP/{missing}" in body["detail"]
    assert await store.get_agent(missing) is None  # nothing written
    # An agent id that is one of Asterisk's endpoints is taken as it is, with no warning.
    if await store.get_agent(ENDPOINT_AS_AGENT_ID) is None:
        got, body = await _send(dialer.client, "POST", "/v1/agents", admin,
                                {"agent_id": ENDPOINT_AS_AGENT_ID, "name": "Web Phone"})
        assert (got, body["sip_endpoint"], body["warnings"]) == (201, None, []), body
    # Clearing an agent's endpoint puts it back on PJSIP/<agent_id>: checked the same way.
    kept = f"qa-kept-{dialer.suffix}"
    got, body = await _send(dialer.client, "POST", "/v1/agents", admin,
                            {"agent_id": kept, "name": "Kept", "sip_endpoint": "agent1016"})
    assert got == 201, body
    got, body = await _send(dialer.client, "PATCH", f"/v1/agents/{kept}", admin, {"sip_endpoint": None})
    assert (got, body["error"]) == (422, "sip_endpoint_unknown"), body
    agent = await store.get_agent(kept)
    assert agent is not None and agent.sip_endpoint == "agent1016"
    # A change that leaves the endpoint alone is not checked; an unknown agent is a 404 first.
    got, body = await _send(dialer.client, "PATCH", f"/v1/agents/{kept}", admin, {"name": "Kept Too"})
    assert (got, body["name"], body["warnings"]) == (200, "Kept Too", []), body
    got, body = await _send(dialer.client, "PATCH", "/v1/agents/nobody-here", admin, {"sip_endpoint": None})
    assert (got, body["error"]) == (404, "agent_not_found"), body
    # In PJSIP/1016@agent1016 Asterisk dials 1016 through the endpoint agent1016: that endpoint is
    # the one asked about (the whole `1016@agent1016` was, and refused as unknown).
    got, body = await _send(dialer.client, "PATCH", f"/v1/agents/{kept}", admin,
                            {"sip_endpoint": "PJSIP/1016@agent1016"})
    assert (got, body["sip_endpoint"], body["warnings"]) == (200, "PJSIP/1016@agent1016", []), body
    got, body = await _send(dialer.client, "PATCH", f"/v1/agents/{kept}", admin,
                            {"sip_endpoint": "PJSIP/1016@nobody-here"})
    assert (got, body["error"]) == (422, "sip_endpoint_unknown"), body


async def test_an_agent_without_an_endpoint_is_taken_with_a_warning_when_asterisk_cannot_be_asked(api: Api) -> None:
    # This API app has no Asterisk (as when it is down).
    admin = await api.token(TokenRole.ADMIN)
    agent_id = f"qa-unasked-{api.call_id}"
    got, body = await _send(api.client, "POST", "/v1/agents", admin, {"agent_id": agent_id, "name": "Unasked"})
    assert (got, body["sip_endpoint"]) == (201, None), body
    assert body["warnings"] == [f"Asterisk could not be asked whether PJSIP/{agent_id} exists: check it before the "
                                "agent logs in"]


# ---- what walking the README and docs/api.md found -----------------------------------------------
async def test_bad_input_found_walking_the_docs_gets_a_named_4xx(dialer: Dialer) -> None:
    crm, client = dialer.crm_token, dialer.client
    supervisor = await dialer.token(TokenRole.SUPERVISOR)
    # Report days given without period=range were ignored: today's figures came back for the week asked.
    for query, field in (("from=2026-11-01&to=2026-11-07", "from"), ("period=week&to=2026-11-07", "to")):
        for report in ("agency", "agents", "campaigns"):
            got, body = await _send(client, "GET", f"/v1/reports/{report}?{query}", crm)
            assert (got, body["error"], body["field"]) == (422, "invalid_field", field), body
            assert "period=range" in body["detail"]
    got, body = await _send(client, "GET", "/v1/reports/agency?period=range&from=2026-11-01&to=2026-11-07", crm)
    assert (got, body["period"]["first_day"], body["period"]["last_day"]) == (200, "2026-11-01", "2026-11-07")
    # An unknown campaign's control audit was an empty 200, unlike its settings and lists (404).
    got, body = await _send(client, "GET", "/v1/campaigns/nobody-here/changes", supervisor)
    assert (got, body["error"], body["field"]) == (404, "campaign_not_found", "campaign_id"), body
    campaign_id = await dialer.campaign()
    got, body = await _send(client, "GET", f"/v1/campaigns/{campaign_id}/changes", supervisor)
    assert (got, body) == (200, {"changes": []})
    # A JSON body starting with a UTF-8 byte order mark (Windows tools write one) was a 400
    # "expected value at line 1 column 1"; RFC 8259 8.1 lets a parser ignore it.
    lead = {"first_name": "Bom", "phone": "(212) 555-0161", "source": "web_form"}
    got, body = await _send(client, "POST", "/v1/leads", crm, raw=b"\xef\xbb\xbf" + json.dumps(lead).encode())
    assert got == 201, body
    # A field sent to an operation that takes no body was silently ignored (`{"reason": ...}` to a
    # hangup, settings to a start): refused now, naming it; nothing or `{}` is still fine.
    for sent, status, error in ((b'{"reason": "wrong number"}', 422, "unknown_field"),
                                (b"hang up", 400, "invalid_json"), (b"{}", 404, "call_not_found"),
                                (b"", 404, "call_not_found")):
        got, body = await _send(client, "POST", "/v1/calls/nobody-here/hangup", crm, raw=sent)
        assert (got, body["error"]) == (status, error), (sent, body)
    got, body = await _send(client, "POST", f"/v1/campaigns/{campaign_id}/start", crm, {"dial_mode": "predictive"})
    assert (got, body["error"], body["field"]) == (422, "unknown_field", "dial_mode"), body
    runtime = dialer.services.campaigns
    assert runtime is not None and runtime.campaign_status(campaign_id) is None  # not started
    # A body not compressed as its Content-Encoding says was a 500 (aiohttp's RequestPayloadError
    # reached the error middleware as a bug); the CSV upload, which streams its body, alike.
    for encoding in ("gzip", "deflate"):
        for path in ("/v1/leads", "/v1/lead-imports?map=phone=Phone"):
            got, body = await _send(client, "POST", path, crm, raw=b"Phone\n2125550142\n",
                                    headers={"Content-Encoding": encoding})
            assert (got, body["error"], body["field"]) == (400, "invalid_header", "Content-Encoding"), body
            assert f"({encoding})" in body["detail"]
    zipped = gzip.compress(json.dumps({"first_name": "Zip", "phone": "(212) 555-0170", "source": "web_form"}).encode())
    got, body = await _send(client, "POST", "/v1/leads", crm, raw=zipped, headers={"Content-Encoding": "gzip"})
    assert got == 201, body
    # The rest of the walk answered as documented; kept here so it stays so.
    answers: list[tuple[str, str, int, str, str | None]] = []
    expected: list[tuple[str, str, int, str, str | None]] = []
    for method, path, sent, status, error, field_name in [
        ("POST", "/v1/leads", b"{", 400, "invalid_json", None),
        ("POST", "/v1/leads", b"[]", 400, "invalid_json", None),
        ("POST", "/v1/leads", '{"first_name": "Ann\xe9"}'.encode("latin-1"), 400, "invalid_json", None),
        ("POST", "/v1/leads", b'{"first_name": "A", "phone": 2125550142, "source": "web_form"}', 422,
         "invalid_field", "phone"),
        ("POST", "/v1/leads", b'{"first_name": "Ann\\u0007", "phone": "2125550142", "source": "web_form"}', 422,
         "invalid_field", "first_name"),
        ("POST", "/v1/leads", b'{"first_name": "Ann", "phone": "555-1234", "source": "web_form"}', 422,
         "invalid_field", "phone"),
        ("POST", "/v1/leads", b'{"first_name": "Ann", "phone": "+44 20 7946 0958", "source": "web_form"}', 422,
         "invalid_field", "phone"),
        ("POST", "/v1/leads", b'{"first_name": "Ann", "phone": "2125550142", "source": "web_form", "x": 1}', 422,
         "unknown_field", "x"),
        ("POST", "/v1/leads", b'{"first_name": "' + b"a" * 300_000 + b'"}', 413, "request_too_large", None),
        ("POST", "/v1/calls", b'{"lead_id": "nobody-here", "agent_id": "nobody-here"}', 422, "unknown_agent",
         "agent_id"),
        ("POST", "/v1/opt-outs", b'{"phone": "555", "source": "api"}', 422, "invalid_field", "phone"),
        ("GET", "/v1/calls?limit=-1", None, 422, "invalid_field", "limit"),
        ("GET", "/v1/calls?limit=1001", None, 422, "invalid_field", "limit"),
        ("GET", "/v1/calls?cursor=garbage", None, 400, "invalid_cursor", "cursor"),
        ("GET", "/v1/calls?since=2026-11-24T10:00:00", None, 422, "invalid_field", "since"),
        ("GET", "/v1/calls?limit=10&limit=20", None, 400, "invalid_parameter", "limit"),
        ("GET", "/v1/decisions?since=0001-01-01T00:00:00Z", None, 422, "invalid_field", "since"),
        ("GET", "/v1/calls/nobody-here", None, 404, "call_not_found", None),
        ("POST", "/v1/calls/nobody-here/disposition", b'{"code": "contacted"}', 404, "call_not_found", None),
        ("GET", "/v1/lead-imports/nobody-here", None, 404, "import_not_found", None),
        ("PUT", "/v1/leads", b"{}", 405, "method_not_allowed", None),
    ]:
        got, body = await _send(client, method, path, crm, raw=sent)
        answers.append((method, path, got, body["error"], body.get("field")))
        expected.append((method, path, status, error, field_name))
    assert answers == expected
    # One Idempotency-Key: the same request (the number written another way) replays, another is refused.
    key = {"Idempotency-Key": f"edge-{uuid.uuid4().hex}"}
    first = await _send(client, "POST", "/v1/opt-outs", crm, {"phone": "+12125550188", "source": "api"}, headers=key)
    again = await _send(client, "POST", "/v1/opt-outs", crm, {"phone": "(212) 555-0188", "source": "api"}, headers=key)
    assert first[0] == 201 and again == first
    got, body = await _send(client, "POST", "/v1/opt-outs", crm, {"phone": "+12125550189", "source": "api"},
                            headers=key)
    assert (got, body["error"]) == (422, "idempotency_key_reused"), body


async def test_following_a_location_at_once_finds_what_was_accepted(dialer: Dialer) -> None:
    """The row of a call accepted with 202 reaches PostgreSQL through the outbox about 0.1 s
    later: `GET Location` right after the 202 was a 404 `call_not_found`, and the opt-out just
    recorded (201) read `opted_out: false`, though every gate already blocked the number."""
    crm, client = dialer.crm_token, dialer.client
    for endpoint in ("agent1017", "agent1018"):  # no phone registered: the call fails, its row stays
        agent_id = await dialer.agent(endpoint)
        async with client.post("/v1/calls", json={"phone": "+12125550243", "agent_id": agent_id},
                               headers=dialer.auth(crm)) as response:
            assert response.status == 202, await response.text()
            location = response.headers["Location"]
        for path in (location, f"{location}/decision"):
            got, body = await _send(client, "GET", path, crm)
            assert got == 200, (path, body)
        assert body["allowed"] is True
    phone = "+12125550244"
    async with client.post("/v1/opt-outs", json={"phone": phone, "source": "api"}, headers=dialer.auth(crm)) as response:
        assert response.status == 201
        location = response.headers["Location"]
    got, body = await _send(client, "GET", location, crm)
    assert (got, body["phone"], body["opted_out"]) == (200, phone, True), body
    assert await dialer.services.outbox.flush(10)
    got, body = await _send(client, "GET", location, crm)
    assert [record["source"] for record in body["opt_outs"]] == ["api"]
    got, body = await _send(client, "GET", "/v1/opt-outs/+12125550245", crm)
    assert (got, body["opted_out"], body["opt_outs"]) == (200, False, [])


def test_a_text_from_a_lead_is_a_documented_message_of_the_agents_stream() -> None:
    """README and docs/texting.md promised `text_received` on the agent's stream; the
    AgentStreamMessage schema (OpenAPI, AsyncAPI) did not list it, so generated clients had no
    type for it and the stream passed it on unchecked."""
    published = {"type": "text_received", "message_id": "msg-1", "from": "+12125550142", "to": "+18885550123",
                 "body": "STOP", "keyword": "opt_out", "received_at": "2026-11-24T14:30:00Z",
                 "lead": {"lead_id": "lead-1", "name": "Dana Lee", "pipeline_stage": "contacted"}}
    assert agent_message(dict(published)) == published
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert "TextReceived" in schemas and "from" in schemas["TextReceived"]["properties"]
    assert "text_received" in json.dumps(asyncapi_document(document))


# ---- webhooks: a delivery cut off by a stop --------------------------------------------------------
def _delivery_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("webhook-delivery-")]


@contextlib.asynccontextmanager
async def _black_hole(port: int) -> AsyncIterator[asyncio.Event]:
    """Takes connections on `port` and never answers; the event is set at the first one."""
    held: list[asyncio.Event] = []
    connected = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        release = asyncio.Event()
        held.append(release)
        connected.set()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield connected
    finally:
        for release in held:
            release.set()
        server.close()
        await server.wait_closed()


async def test_a_delivery_cut_off_by_a_stop_is_awaited_and_sent_again_after_its_lease(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    port = free_local_port()
    url = f"http://127.0.0.1:{port}/hooks"
    got, subscription = await _send(api.client, "POST", "/v1/webhooks", admin,
                                    {"url": url, "event_types": ["lead.opted_out"]})
    assert got == 201, subscription
    deliveries = f"/v1/webhooks/{subscription['subscription_id']}/deliveries"
    options = WebhookOptions(poll_interval=0.2, timeout=30.0, lease_seconds=2.0, first_retry=0.5, most_retry=1.0)
    try:
        async with _black_hole(port) as connected:
            dispatcher = WebhookDispatcher(api.pg_dsn, options)
            running = asyncio.create_task(dispatcher.run(), name="test-webhook-dispatcher")
            got, _ = await _send(api.client, "POST", "/v1/opt-outs", api.crm, {"phone": "(646) 555-0142", "source": "api"})
            assert got == 201
            assert await api.outbox.flush(10)
            await asyncio.wait_for(connected.wait(), 15)
            in_flight = _delivery_tasks()
            assert len(in_flight) == 1 and in_flight[0].get_name().startswith("webhook-delivery-")
            # The stop: the run ends only once its delivery in flight has ended.
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, 5)
            assert in_flight[0].done() and _delivery_tasks() == []
        got, body = await _send(api.client, "GET", deliveries, admin)
        [delivery] = body["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("pending", 0), delivery  # leased, not lost
        # The endpoint answers now; a new run sends it once its lease has run out, once.
        receiver = Receiver(port=port)
        await receiver.up()
        dispatcher = WebhookDispatcher(api.pg_dsn, options)
        running = asyncio.create_task(dispatcher.run(), name="test-webhook-dispatcher")
        try:
            await receiver.wait_for(lambda: bool(receiver.of_type("lead.opted_out")), 20, "the delivery sent again")
            await asyncio.sleep(1.0)  # a second copy would arrive now
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await receiver.down()
        assert len(receiver.received) == 1
        assert receiver.received[0].message["data"]["phone"] == "+16465550142"
        got, body = await _send(api.client, "GET", deliveries, admin)
        assert [(item["status"], item["attempts"]) for item in body["deliveries"]] == [("delivered", 1)]
    finally:
        async with api.store.acquire() as conn:
            await conn.execute("DELETE FROM webhook_subscriptions WHERE subscription_id = $1",
                               subscription["subscription_id"])


# ---- the API's background tasks ----------------------------------------------------------------------
@pytest.mark.timeout(10)
async def test_a_task_failure_is_logged_when_it_happens_and_a_stop_waits_for_the_end() -> None:
    ended = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("the spool is gone")

    async def runs_until_stopped() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    with capture_logs() as logs:
        failing = start_task(fails(), "lead-import-worker")
        await asyncio.wait([failing])
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert [(line["event"], line["task"], line["error"]) for line in logs if line["event"] == "task_failed"] == [
        ("task_failed", "lead-import-worker", "RuntimeError: the spool is gone")]
    running = start_task(runs_until_stopped(), "event-stream-sessions")
    await asyncio.sleep(0)
    await stop_tasks([running, failing])
    assert running.cancelled() and ended.is_set()


@pytest.mark.timeout(10)
async def test_the_session_check_survives_a_failed_query_and_is_awaited_at_cleanup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "SESSION_CHECK_SECONDS", 0.05)
    answers: list[BaseException | set[str]] = [RuntimeError("connection reset"), set()]

    async def live_sessions(asked: Any) -> set[str]:
        answer = answers.pop(0) if answers else set()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    watch = SessionWatch(live_sessions)
    with capture_logs() as logs:
        with watch.watch("sess-1") as ended:
            # The first query fails: logged, and the next round ends the stream whose session ended.
            await asyncio.wait_for(ended.wait(), 5)
    assert [line["event"] for line in logs if line["log_level"] == "error"] == ["event_stream_session_check_failed"]
    with watch.watch("sess-2"):
        checking = [task for task in asyncio.all_tasks() if task.get_name() == "event-stream-sessions"]
        assert len(checking) == 1
        await watch.close()
    assert checking[0].done()



# ---- one code for "no such campaign" ------------------------------------------------------------
async def test_an_unknown_campaign_is_campaign_not_found_on_every_campaign_endpoint(dialer: Dialer) -> None:
    # Before: `/start` said `unknown_campaign`, GET and `/stop` a 404 `campaign_not_running`,
    # `/pause` and `/resume` a 409 `campaign_not_running`, the admin routes `campaign_not_found`.
    supervisor, client = await dialer.token(TokenRole.SUPERVISOR), dialer.client
    unknown = f"nobody-{uuid.uuid4().hex[:8]}"
    for method, path, body in (
        ("POST", "start", None), ("POST", "stop", None), ("GET", "", None), ("POST", "pause", None),
        ("POST", "resume", None), ("POST", "settings", {"dial_mode": "power"}), ("GET", "changes", None),
        ("GET", "settings", None), ("GET", "lists", None),
    ):
        got, answer = await _send(client, method, f"/v1/campaigns/{unknown}/{path}".rstrip("/"), supervisor, body)
        assert (got, answer["error"], answer["field"]) == (404, "campaign_not_found", "campaign_id"), (path, answer)
    # A campaign that exists but is not dialing here: 409 `campaign_not_running`, and only that.
    campaign_id = await dialer.campaign()
    for method, path in (("POST", "stop"), ("GET", ""), ("POST", "pause"), ("POST", "resume")):
        got, answer = await _send(client, method, f"/v1/campaigns/{campaign_id}/{path}".rstrip("/"), supervisor)
        assert (got, answer["error"], answer["field"]) == (409, "campaign_not_running", "campaign_id"), (path, answer)
    # The OpenAPI document says so for each of them.
    paths = openapi_document()["paths"]
    for path, method in (("/v1/campaigns/{campaign_id}/start", "post"), ("/v1/campaigns/{campaign_id}", "get"),
                         ("/v1/campaigns/{campaign_id}/stop", "post"), ("/v1/campaigns/{campaign_id}/pause", "post"),
                         ("/v1/campaigns/{campaign_id}/resume", "post"),
                         ("/v1/campaigns/{campaign_id}/settings", "post")):
        assert "campaign_not_found" in paths[path][method]["responses"]["404"]["description"], path


# ---- invisible formatting characters in names -------------------------------------------------------
SPOOFS = ["Ann\u202enosnhoJ", "\u2066Ann\u2069", "Ann\u200bJohnson", "Ann\u200fJohnson", "Ann\ufeffJohnson",
          "Ann\u202aJohnson"]


async def test_a_name_with_invisible_formatting_is_refused_with_its_own_code(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    suffix = uuid.uuid4().hex[:8]
    creations = [("/v1/agents", {"agent_id": f"spoof-a-{suffix}"}), ("/v1/lists", {"list_id": f"spoof-l-{suffix}"}),
                 ("/v1/campaigns", {"campaign_id": f"spoof-c-{suffix}", "dial_mode": "preview",
                                    "caller_id": "+18885550123"})]
    for name in SPOOFS:
        for path, fields in creations:
            got, body = await _send(api.client, "POST", path, admin, {**fields, "name": name})
            assert (got, body["error"], body["field"]) == (422, "invisible_characters", "name"), (path, name, body)
            assert f"U+{ord(next(c for c in name if not c.isascii())):04X}" in body["message"]
    # A web lead's name, a disposition code: the same rule, in the same place.
    got, body = await _send(api.client, "POST", "/v1/leads", api.crm,
                            {"first_name": "Dee\u202e", "phone": "+14045550177", "source": "web"})
    assert (got, body["error"], body["field"]) == (422, "invisible_characters", "first_name"), body
    got, body = await _send(api.client, "POST", f"/v1/calls/{api.call_id}/disposition", api.agent,
                            {"code": "sale\u200b"})
    assert (got, body["error"], body["field"]) == (422, "invisible_characters", "code"), body
    # Visible text from other scripts is not touched: accents, Hebrew, CJK.
    for name in ("Zoë Ångström", "\u05d3\u05e0\u05d4 Cohen", "\u674e\u534e"):
        got, body = await _send(api.client, "POST", "/v1/agents", admin,
                                {"agent_id": f"fine-{uuid.uuid4().hex[:8]}", "name": name})
        assert got == 201 and body["name"] == name, body


# ---- an unknown call id is answered at once ------------------------------------------------------
async def test_an_unknown_call_id_is_a_404_at_once_while_the_outbox_is_busy(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load the outbox always holds records; `GET /v1/calls/{id}` waited up to 1 s for the
    # row of any id then, unknown ones too. Only the ids this process accepted are waited for now.
    busy = replace(api.outbox.stats(), pending=500)
    monkeypatch.setattr(api.outbox, "stats", lambda: busy)
    started = time.monotonic()
    for _ in range(5):
        got, body = await _send(api.client, "GET", f"/v1/calls/call-{uuid.uuid4().hex}", api.crm)
        assert (got, body["error"]) == (404, "call_not_found"), body
    assert (time.monotonic() - started) / 5 < 0.3, "an unknown call id still waits for the outbox"
    # A call this process has just accepted is still waited for: its row arrives a moment later.
    accepted = f"call-{uuid.uuid4().hex}"
    api.client.server.app[ACCEPTED_CALLS].add(accepted)

    async def row_a_moment_later() -> None:
        await asyncio.sleep(0.3)
        await api.outbox.put("call", {"call_id": accepted, "version": 1, "direction": "outbound",
                                      "lead_id": api.lead_id, "agent_id": api.agent_id, "lead_number": api.phone,
                                      "requested_at": datetime.now(UTC)})

    writer = start_task(row_a_moment_later(), "call-row-later")
    got, body = await _send(api.client, "GET", f"/v1/calls/{accepted}", api.crm)
    await stop_tasks([writer])
    assert (got, body["call_id"]) == (200, accepted), body


def test_accepted_calls_are_remembered_for_a_while_then_forgotten() -> None:
    now = [100.0]
    accepted = AcceptedCalls(keep=60.0, clock=lambda: now[0])
    accepted.add("call-a")
    now[0] += 30
    accepted.add("call-b")
    assert "call-a" in accepted and "call-b" in accepted and "call-c" not in accepted
    now[0] += 31  # call-a is 61 s old: forgotten (and dropped at the next add)
    assert "call-a" not in accepted and "call-b" in accepted
    accepted.add("call-c")
    assert len(accepted) == 2  # memory follows the call rate, not the uptime
