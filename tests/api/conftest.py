"""The HTTP API app (no controller) against the test run's real PostgreSQL (through the outbox)
and Redis, with a few rows and tokens to work with."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from compliance_rules.ruleset import RuleBook, load_rulebook
from compliance_rules.store import DncStore
from crm_bridge.migrate import migrate
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore, TokenRole
from dialer.api.http import ApiDependencies
from dialer.app import build_app
from dialer.campaign.caller_id import CallerIdCheck
from dialer.runtime.agent_events import AgentEventHub


@dataclass
class Api:
    client: TestClient[Any, Any]
    store: CrmStore
    outbox: Outbox
    dnc: DncStore
    pg_dsn: str
    crm: str
    agent: str
    other_agent: str
    call_id: str
    lead_id: str
    phone: str
    agent_id: str
    other_agent_id: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def token(self, role: TokenRole, agent_id: str | None = None) -> str:
        return (await self.store.issue_token(role, agent_id=agent_id)).secret


@contextlib.asynccontextmanager
async def open_api(pg_dsn: str, redis_url: str, redis_prefix: str, state: Path, *,
                   store_dsn: str | None = None, hub: AgentEventHub | None = None,
                   sip_credentials_file: Path | None = None,
                   caller_id_check: Callable[[str], CallerIdCheck] | None = None,
                   rulebook: RuleBook | bool | None = True, **server: Any) -> AsyncIterator[Api]:
    """The API app with two agents, a lead and an ended call of the first agent; `store_dsn`: the
    DSN the API's store uses (e.g. through a fault proxy); `rulebook`: the gate's rulebook the
    routes are handed (True: the shipped rule data; None: none loaded)."""
    connection = await asyncpg.connect(pg_dsn)
    await migrate(connection)
    await connection.close()
    store = await CrmStore.open(store_dsn or pg_dsn)
    redis = aioredis.from_url(redis_url)
    suffix = uuid.uuid4().hex[:8]
    lead_id, call_id, phone = f"lead-{suffix}", f"call-{suffix}", "+12125551205"
    agent_id, other_agent_id = f"a1-{suffix}", f"a2-{suffix}"
    try:
        async with Outbox(state, pg_dsn, poll_interval=0.1) as outbox:
            await outbox.put_many([
                ("agent_upsert", {"agent_id": agent_id, "name": "Ann Agent"}),
                ("agent_upsert", {"agent_id": other_agent_id, "name": "Bob Agent"}),
                ("lead_upsert", {"lead_id": lead_id, "first_name": "Dana", "phones": [phone], "state": "NY"}),
                ("call", {"call_id": call_id, "version": 1, "direction": "outbound", "lead_id": lead_id,
                          "agent_id": agent_id, "lead_number": phone, "requested_at": datetime.now(UTC),
                          "ended_at": datetime.now(UTC), "outcome": "answered"}),
            ])
            assert await outbox.flush(10)
            crm = (await store.issue_token(TokenRole.CRM, label="test crm")).secret
            agent = (await store.issue_token(TokenRole.AGENT, agent_id=agent_id)).secret
            other = (await store.issue_token(TokenRole.AGENT, agent_id=other_agent_id)).secret
            dnc = DncStore(redis, redis_prefix)
            # As `dialer serve` hands its routes the gate's loaded rulebook.
            book = load_rulebook() if rulebook is True else rulebook or None
            deps = ApiDependencies(store=store, records=outbox, dnc=dnc, agent_events=hub or AgentEventHub(),
                                   rulebook=book)
            app = build_app(deps, sip_credentials_file=sip_credentials_file, caller_id_check=caller_id_check)
            test_server = TestServer(app)
            if server:  # runner options (TestServer's constructor does not pass them on)
                await test_server.start_server(**server)
            async with TestClient(test_server) as client:
                yield Api(client, store, outbox, dnc, pg_dsn, crm, agent, other, call_id, lead_id, phone, agent_id,
                          other_agent_id)
    finally:
        await store.close()
        await redis.aclose()


@pytest.fixture
async def api(pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state") as opened:
        yield opened


# The whole dialer as `dialer serve` runs it (controller, campaigns, Asterisk), for the tests of
# the API that need its runtimes: the controller tests' fixture, not a copy of it.
from tests.controller.conftest import dialer as dialer  # noqa: E402
