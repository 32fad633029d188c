"""The HTTP messaging-provider adapter against a local server playing the provider: it checks
the shape of every request (basic auth, form fields, the status callback URL) as the "Messages"
REST API documents them, and signs its webhooks as the provider does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from compliance_rules.numbers import parse_number
from compliance_rules.rules import OPTOUT
from crm_bridge.store import TokenRole
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from dialer.serve import dialer_services
from dialer.texting.provider import INBOUND_PATH, STATUS_PATH, signature
from tests.controller.conftest import dialer_settings, mark_lists_fresh
from tests.texting.conftest import Clock, TextingDialer, phone_number
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "provider-secret-token"
REFUSED_NUMBER = "+12125559999"


def documented_signature(url: str, params: dict[str, str], token: str) -> str:
    """The provider's documented algorithm, written out again independently of the adapter:
    the full URL, then each POST field name and value sorted by name, HMAC-SHA1 with the auth
    token, base64."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


@dataclass
class FakeProvider:
    """The provider's side: its Messages endpoint, which checks what it is sent."""

    status_callback: str
    sent: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def messages(self, request: web.Request) -> web.Response:
        expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected_auth:
            self.problems.append("bad basic auth")
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        if request.content_type != "application/x-www-form-urlencoded":
            self.problems.append(f"content type {request.content_type}")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if set(form) != {"To", "From", "Body", "StatusCallback"}:
            self.problems.append(f"fields {sorted(form)}")
        if form.get("StatusCallback") != self.status_callback:
            self.problems.append(f"status callback {form.get('StatusCallback')}")
        if form.get("To") == REFUSED_NUMBER:
            return web.json_response({"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400},
                                     status=400)
        sid = f"SM{uuid.uuid4().hex}"
        self.sent.append({**form, "sid": sid})
        return web.json_response({"sid": sid, "status": "queued", "to": form["To"], "from": form["From"],
                                  "body": form["Body"]}, status=201)


@dataclass
class ProviderDialer:
    dialer: TextingDialer
    provider: FakeProvider
    base_url: str

    async def webhook(self, path: str, params: dict[str, str], *, sign: bool = True) -> int:
        headers = {"X-Twilio-Signature": documented_signature(self.base_url + path, params, TOKEN) if sign
                   else "bm90IGEgc2lnbmF0dXJl"}
        response = await self.dialer.client.post(path, data=params, headers=headers)
        return response.status


@pytest.fixture
async def provider_dialer(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[ProviderDialer]:
    api_port = free_local_port()
    base_url = f"http://127.0.0.1:{api_port}"
    provider = FakeProvider(status_callback=base_url + STATUS_PATH)
    provider_app = web.Application()
    provider_app.router.add_post(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json", provider.messages)
    async with TestServer(provider_app) as provider_server:
        settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
        settings = replace(settings, texting_transport="http",
                           texting_http_url=str(provider_server.make_url("/")).rstrip("/"),
                           texting_http_account=ACCOUNT, texting_http_token=TOKEN, texting_webhook_url=base_url,
                           agency_name="Acme Insurance")
        clock = Clock()
        async with dialer_services(settings, gate_clock=clock, drain_seconds=5,
                                   texting_overrides={"segments_per_second": 20.0}) as services:
            await mark_lists_fresh(services)
            crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
            async with TestClient(TestServer(services.app, port=api_port)) as client:
                dialer = TextingDialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6], clock)
                yield ProviderDialer(dialer, provider, base_url)


def test_the_signature_is_the_documented_one() -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+12125550142", "From": "+18885550100"}
    url = "https://dialer.example.org/v1/texting/provider/status"
    assert signature(url, params, TOKEN) == documented_signature(url, params, TOKEN)
    assert signature(url + "?x=1", params, TOKEN) != documented_signature(url, params, TOKEN)


async def test_a_text_goes_out_in_the_documented_shape_and_its_status_callback_lands(
    provider_dialer: ProviderDialer,
) -> None:
    dialer, provider = provider_dialer.dialer, provider_dialer.provider
    phone = phone_number("580")
    lead_id = await dialer.consenting_lead(phone)
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: your quote is ready."})
    assert status == 202, body
    row = await dialer.message(body["message_id"], until=lambda m: m.status == "sent")
    assert provider.problems == []
    assert len(provider.sent) == 1
    sent = provider.sent[0]
    assert (sent["To"], sent["From"]) == (phone, "+18885550100")
    assert sent["Body"] == "Acme Insurance: your quote is ready. Reply STOP to opt out."
    assert (row.transport, row.provider_message_id) == ("http", sent["sid"])

    callback = {"MessageSid": sent["sid"], "MessageStatus": "delivered", "To": phone, "From": "+18885550100",
                "AccountSid": ACCOUNT}
    assert await provider_dialer.webhook(STATUS_PATH, callback, sign=False) == 403
    assert await provider_dialer.webhook(STATUS_PATH, callback) == 204
    row = await dialer.message(body["message_id"], until=lambda m: m.delivery_status == "delivered")
    late = {**callback, "MessageStatus": "sent"}
    assert await provider_dialer.webhook(STATUS_PATH, late) == 204  # late, intermediate: ignored
    await dialer.services.outbox.flush(5)
    row = await dialer.message(body["message_id"])
    assert row.delivery_status == "delivered"


async def test_a_provider_refusal_fails_the_text(provider_dialer: ProviderDialer) -> None:
    dialer = provider_dialer.dialer
    lead_id = await dialer.consenting_lead(REFUSED_NUMBER)
    status, body = await dialer.post_text({"lead_id": lead_id, "body": "Acme Insurance: hi"})
    assert status == 202
    row = await dialer.message(body["message_id"], until=lambda m: m.status == "failed")
    assert row.status_detail is not None and "21211" in row.status_detail


async def test_a_signed_inbound_stop_opts_out_and_is_confirmed_once(provider_dialer: ProviderDialer) -> None:
    dialer, provider = provider_dialer.dialer, provider_dialer.provider
    phone = phone_number("581")
    lead_id = await dialer.consenting_lead(phone)
    inbound: dict[str, Any] = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": ACCOUNT, "From": phone,
                               "To": "+18885550100", "Body": "Stop texting me please", "NumMedia": "0"}
    assert await provider_dialer.webhook(INBOUND_PATH, inbound, sign=False) == 403
    assert await provider_dialer.webhook(INBOUND_PATH, inbound) == 200
    number = parse_number(phone)

    async def opted_out() -> bool:
        return bool(await dialer.services.dnc.redis.sismember(dialer.services.dnc.list_key(OPTOUT, number.npa),
                                                              str(number.local)))
    await until(opted_out, 5, interval=0.05)
    await until(lambda: len(provider.sent) == 1, 5, interval=0.05)
    assert provider.sent[0]["To"] == phone and "opted out" in provider.sent[0]["Body"]
    again = {**inbound, "MessageSid": f"SM{uuid.uuid4().hex}", "Body": "STOP"}
    assert await provider_dialer.webhook(INBOUND_PATH, again) == 200
    await asyncio.sleep(1.0)
    assert len(provider.sent) == 1  # no second confirmation
    rows = [m for m in await dialer.messages_of(lead_id) if m.direction == "inbound"]
    assert [m.provider_message_id for m in rows] == [inbound["MessageSid"], again["MessageSid"]]
