"""The whole dialer (controller + API + gate + outbox) against the test run's real Asterisk,
PostgreSQL and Redis, with a clock inside every calling window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import Call, TokenRole
from dialer.ari.auth import basic_auth_header
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import DialerServices, dialer_services
from dialer.settings import Settings, from_environment
from tests.conftest import AUDIT_KEYS_DIR

# A Tuesday at noon Eastern, 9 a.m. Pacific: inside every state's window, no holiday.
GATE_NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
STATE_LISTS = ("CO", "FL", "IN", "LA", "MA", "MS", "MO", "OK", "PA", "TN", "TX", "WY")


def dialer_settings(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, workdir: Path
) -> Settings:
    return from_environment(
        {},
        pg_dsn=pg_dsn,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        ari_port=asterisk.config.ari_port,
        ari_user=asterisk.config.ari_user,
        ari_password=asterisk.config.ari_password,
        ari_app=asterisk.config.ari_app,
        cache_dir=workdir / "cache",
        state_root=str(workdir / "state"),
        recordings_root=str(workdir / "recordings"),
        audit_keys_root=str(AUDIT_KEYS_DIR),
        instance="controller-test",
    )


@dataclass
class Dialer:
    services: DialerServices
    client: TestClient[Any, Any]
    asterisk: AsteriskInstance
    pg_dsn: str
    crm_token: str
    suffix: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.crm_token}"}

    async def seed(self, kind: str, record: dict[str, Any]) -> None:
        await self.services.outbox.put(kind, record)
        assert await self.services.outbox.flush(10)

    async def agent(self, endpoint: str) -> str:
        agent_id = f"{endpoint}-{self.suffix}"
        await self.seed("agent_upsert", {"agent_id": agent_id, "name": f"Agent {endpoint}", "sip_endpoint": endpoint})
        return agent_id

    async def lead(self, phone: str, **fields: Any) -> str:
        lead_id = f"lead-{uuid.uuid4().hex[:12]}"
        await self.seed("lead_upsert", {"lead_id": lead_id, "first_name": "Dana", "last_name": "Lee",
                                        "phones": [phone], **fields})
        return lead_id

    async def campaign(self, caller_id: str = "+18885550123") -> str:
        campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
        await self.seed(
            "campaign_upsert",
            {"campaign_id": campaign_id, "name": "Medicare supplement follow-up", "caller_id": caller_id,
             "dial_mode": "preview"},
        )
        return campaign_id

    async def token(self, role: TokenRole, agent_id: str | None = None) -> str:
        return (await self.services.store.issue_token(role, agent_id=agent_id)).secret

    async def ended_call(self, call_id: str, within: float = 60.0) -> Call:
        """The CRM row of a call once the controller has finished it and the outbox delivered it."""
        async with asyncio.timeout(within):
            while True:
                if self.services.controller.call_status(call_id) is None:
                    await self.services.outbox.flush(10)
                    call = await self.services.store.get_call(call_id)
                    if call is not None and call.ended_at is not None and call.outcome is not None:
                        return call
                await asyncio.sleep(0.2)

    async def our_asterisk_objects(self) -> list[str]:
        return await our_asterisk_objects(self.asterisk)

    async def nothing_left(self, within: float = 10.0) -> None:
        """Wait until Asterisk holds none of our calls' channels or bridges (a Local channel's
        ';2' half goes a moment after its ';1'); fail with what is left after `within` s."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = await self.our_asterisk_objects()
            if not left or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.2)
        assert left == [], f"left in Asterisk: {left}"

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.pg_dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()


async def our_asterisk_objects(asterisk: AsteriskInstance) -> list[str]:
    """Ids of the channels and bridges our calls created that Asterisk still has."""
    headers = basic_auth_header(asterisk.config.ari_user, asterisk.config.ari_password)
    found = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for kind in ("channels", "bridges"):
            async with session.get(f"{asterisk.ari_url}/{kind}") as response:
                found += [item["id"] for item in await response.json() if item["id"].startswith("call-")]
    return found


async def mark_lists_fresh(services: DialerServices, today: datetime = GATE_NOW) -> None:
    await services.dnc.set_list_date("federal", today.date())
    for state in STATE_LISTS:
        await services.dnc.set_list_date(f"state:{state}", today.date())


@pytest.fixture
async def dialer(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Dialer]:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    timeouts = CallTimeouts(agent_ring=8.0, lead_ring=15.0)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=timeouts, drain_seconds=5) as services:
        await mark_lists_fresh(services)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Dialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])


Waiter = Callable[[], Awaitable[None]]
