"""The whole dialer with the campaign runtime against the test run's real Asterisk, PostgreSQL
and Redis; the gate's clock is a Tuesday 14:30 UTC: 9:30 a.m. in New York (inside the calling
window), 6:30 a.m. in California (outside it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.ari.auth import basic_auth_header
from dialer.campaign.dialing import campaign_lead_record
from dialer.campaign.runtime import CampaignRuntime
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import DialerServices, dialer_services
from tests.controller.conftest import dialer_settings, mark_lists_fresh

GATE_NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
CAMPAIGN_TUNING: dict[str, object] = {
    "wrap_up_seconds": 1.0,
    "ring_timeout": 15,
    "tick_seconds": 0.3,
    "max_lines": 12,
    "tally_refresh_seconds": 2.0,
}


@dataclass
class Floor:
    services: DialerServices
    client: TestClient[Any, Any]
    asterisk: AsteriskInstance
    pg_dsn: str
    crm_token: str
    suffix: str

    @property
    def campaigns(self) -> CampaignRuntime:
        assert self.services.campaigns is not None
        return self.services.campaigns

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.crm_token}"}

    async def seed_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        await self.services.outbox.put_many(items)
        assert await self.services.outbox.flush(20)

    async def agent(self, endpoint: str) -> str:
        """An agent on a softphone endpoint (`agent1001`) or a simulated one (`Local/ID@agent-sim`)."""
        agent_id = f"{endpoint.replace('/', '-').replace('@', '-')}-{self.suffix}"
        await self.seed_many([("agent_upsert", {"agent_id": agent_id, "name": f"Agent {agent_id}",
                                                "sip_endpoint": endpoint})])
        return agent_id

    async def campaign(self, *, dial_mode: str = "progressive", machine_action: str = "hangup") -> str:
        campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
        await self.seed_many([("campaign_upsert", {
            "campaign_id": campaign_id, "name": "Final expense outreach", "caller_id": "+18885550123",
            "dial_mode": dial_mode, "seller_name": "Acme Insurance", "dnc_callback_number": "+18885550199",
            "amd_settings": {"machine_action": machine_action},
        })])
        return campaign_id

    async def leads(self, campaign_id: str, phones: list[str], **fields: Any) -> dict[str, str]:
        """Leads in the campaign; returns phone -> lead id."""
        ids = {phone: f"lead-{uuid.uuid4().hex[:12]}" for phone in phones}
        items: list[tuple[str, dict[str, Any]]] = []
        for phone, lead_id in ids.items():
            items.append(("lead_upsert", {"lead_id": lead_id, "first_name": "Pat", "last_name": "Doe",
                                          "phones": [phone], **fields}))
            items.append(("campaign_lead", campaign_lead_record(campaign_id, lead_id)))
        await self.seed_many(items)
        return ids

    async def token(self, role: TokenRole, agent_id: str | None = None) -> str:
        return (await self.services.store.issue_token(role, agent_id=agent_id)).secret

    async def recordings(self, call_id: str, seconds: float = 30.0) -> list[asyncpg.Record]:
        """The call's `recordings` rows once its archiving is done: a runner ends the call
        first, then transcodes and seals its recording (a second or two for Opus)."""
        async with asyncio.timeout(seconds):
            while True:
                await self.services.outbox.flush(5)
                rows = await self.fetch("SELECT * FROM recordings WHERE call_id = $1", call_id)
                if rows:
                    return rows
                await asyncio.sleep(0.2)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.pg_dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def asterisk_objects(self, *prefixes: str) -> list[str]:
        headers = basic_auth_header(self.asterisk.config.ari_user, self.asterisk.config.ari_password)
        found = []
        async with aiohttp.ClientSession(headers=headers) as session:
            for kind in ("channels", "bridges"):
                async with session.get(f"{self.asterisk.ari_url}/{kind}") as response:
                    found += [item["id"] for item in await response.json() if item["id"].startswith(prefixes)]
        return found

    async def nothing_left(self, *prefixes: str, within: float = 10.0) -> None:
        """Wait until Asterisk holds no channel or bridge of ours (a Local channel's ';2' half
        goes a moment after its ';1'); fail with what is left after `within` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = await self.asterisk_objects(*prefixes)
            if not left or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.2)
        assert left == [], f"left in Asterisk: {left}"

    async def wait_for(self, predicate: Any, within: float, what: str) -> None:
        """Poll `predicate` (state the runtime owns, no event to wait on) until true."""
        deadline = asyncio.get_running_loop().time() + within
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"not within {within} s: {what}")
            await asyncio.sleep(0.1)


@pytest.fixture
def agent_phone(asterisk: AsteriskInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start baresip agents whose audio lasts `seconds` (default 10 minutes); stopped after the test."""
    from dialer.demo.softphone import long_tone
    from tests.softphone import Softphone

    phones: list[Softphone] = []
    # baresip hangs up when its audio source ends (the stock test tone lasts 30 s), which
    # would end a nailed-up agent leg mid-session.
    source = long_tone(tmp_path_factory.getbasetemp() / "agent-tone-long.wav", 600)

    def start(endpoint: str) -> Softphone:
        phone = Softphone(tmp_path_factory.mktemp(endpoint), endpoint, asterisk.sip_credentials(endpoint).password,
                          asterisk.config.sip_port, tone=source)
        phones.append(phone)
        phone.start()
        return phone

    yield start
    for phone in phones:
        phone.stop()


@pytest.fixture
async def floor(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Floor]:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    async with dialer_services(
        settings,
        gate_clock=lambda: GATE_NOW,
        timeouts=CallTimeouts(agent_ring=8.0, lead_ring=15.0),
        drain_seconds=5,
        campaign_overrides=CAMPAIGN_TUNING,
    ) as services:
        await mark_lists_fresh(services, GATE_NOW)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Floor(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])
