"""The whole dialer with texting, against the test run's real Asterisk (its simulated carrier's
phones answer texts by rule), PostgreSQL and Redis, with a gate clock the test can move."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import Message, TokenRole
from dialer.ari.client import AriClient, AriConfig
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from dialer.serve import dialer_services
from tests.controller.conftest import GATE_NOW, Dialer, dialer_settings, mark_lists_fresh
from tests.waiting import until

PEWC = [{"consent_id": "", "kind": "pewc", "obtained_at": "2026-01-05T15:00:00+00:00", "source": "web_form",
         "evidence_ref": "forms/quote-1"}]


@dataclass
class Clock:
    """The gate's clock, moved by the test."""

    now: datetime = GATE_NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class PhoneLogLine:
    at: int
    direction: str  # received | sent
    peer: str
    message_id: str
    body: str


@dataclass
class TextingDialer(Dialer):
    clock: Clock = field(default_factory=Clock)

    @property
    def texting(self) -> Any:
        assert self.services.texting is not None
        return self.services.texting

    def phone_log(self, phone: str) -> list[PhoneLogLine]:
        """What the simulated phone `phone` received and sent (asterisk-config: texts-phone)."""
        path = self.asterisk.texts_dir / f"{phone}.log"
        if not path.exists():
            return []
        lines = []
        for raw in path.read_text().splitlines():
            at, direction, peer, message_id, body = raw.split("|", 4)
            lines.append(PhoneLogLine(int(at), direction, peer, message_id, base64.b64decode(body).decode()))
        return lines

    def received(self, phone: str) -> list[str]:
        return [line.body for line in self.phone_log(phone) if line.direction == "received"]

    async def phone_receives(self, phone: str, count: int = 1, within: float = 10.0) -> list[str]:
        await until(lambda: len(self.received(phone)) >= count, within, interval=0.05)
        return self.received(phone)

    async def text_from_phone(self, phone: str, body: str, to: str) -> None:
        """Make the simulated carrier deliver a text from `phone` to our number `to`."""
        config = AriConfig(url=self.asterisk.ari_url, user=self.asterisk.config.ari_user,
                           password=self.asterisk.config.ari_password, app="texting-tests")
        async with AriClient(config) as ari:
            await ari.send_message(f"pjsip:PJSIP/{to}@dialer", f"<sip:{phone}@127.0.0.1>", body)

    async def texting_campaign(self, caller_id: str, seller: str = "Acme Insurance") -> str:
        campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
        await self.seed("campaign_upsert", {
            "campaign_id": campaign_id, "name": "Final expense follow-up", "caller_id": caller_id,
            "dial_mode": "preview", "seller_name": seller, "dnc_callback_number": caller_id})
        return campaign_id

    async def consenting_lead(self, phone: str, **fields: Any) -> str:
        consents = [{**PEWC[0], "consent_id": f"pewc-{uuid.uuid4().hex[:8]}", "phone": phone}]
        return await self.lead(phone, consents=consents, state="NY", zip="10001", **fields)

    async def post_text(self, body: Mapping[str, Any], token: str | None = None,
                        headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        response = await self.client.post("/v1/messages", json=dict(body), headers={**self.auth(token), **(headers or {})})
        return response.status, await response.json()

    async def message(self, message_id: str, *, until: Any = None, within: float = 10.0) -> Message:
        """The CRM row of a text, once `until(row)` holds (default: it exists)."""
        async with asyncio.timeout(within):
            while True:
                await self.services.outbox.flush(5)
                found = await self.services.store.get_message(message_id)
                if found is not None and (until is None or until(found)):
                    return found
                await asyncio.sleep(0.05)

    async def messages_of(self, lead_id: str) -> list[Message]:
        await self.services.outbox.flush(5)
        return await self.services.store.list_messages(lead_id=lead_id)


def phone_number(exchange: str, behaviour: str = "1005") -> str:
    """A fresh simulated number in `exchange` (77P: a texting persona) in New York (212)."""
    return f"+1212{exchange}{behaviour[:1]}{uuid.uuid4().int % 1000:03d}"


async def eventually(check: Any, within: float = 5.0, step: float = 0.02) -> float:
    """Seconds until `await check()` is true."""
    start = time.monotonic()
    await until(check, within, interval=step)
    return time.monotonic() - start


@pytest.fixture
async def texting_dialer(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[TextingDialer]:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    clock = Clock()
    async with dialer_services(settings, gate_clock=clock, timeouts=CallTimeouts(agent_ring=8.0, lead_ring=15.0),
                               drain_seconds=5, texting_overrides={"segments_per_second": 20.0, "agency_name": "Acme Insurance"}) as services:
        await mark_lists_fresh(services)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield TextingDialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6], clock)


def ny(hour: int, minute: int) -> datetime:
    """A Tuesday (2026-11-24) at hour:minute in New York (UTC-5)."""
    return datetime(2026, 11, 24, hour, minute, tzinfo=UTC) + timedelta(hours=5)


class FakeProvider:
    """A local stand-in for the HTTP messaging provider's Messages.json: it keeps each text's `To`
    and takes it (a new `sid`, 201), or, `silent`, never answers (a text handed over whose
    confirmation never comes)."""

    def __init__(self, *, silent: bool = False) -> None:
        self.silent = silent
        self.requests: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = free_local_port()

    def settings(self) -> dict[str, str]:
        """The dialer's environment for sending through this provider."""
        return {"DIALER_TEXTING_TRANSPORT": "http", "DIALER_TEXTING_HTTP_URL": f"http://127.0.0.1:{self.port}",
                "DIALER_TEXTING_HTTP_ACCOUNT": "AC1", "DIALER_TEXTING_HTTP_TOKEN": "secret",
                "DIALER_TEXTING_WEBHOOK_URL": "http://127.0.0.1:9"}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(str((await request.post()).get("To")))
        if self.silent:
            await asyncio.Event().wait()
        return web.json_response({"sid": f"SM{uuid.uuid4().hex}"}, status=201)

    async def __aenter__(self) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
