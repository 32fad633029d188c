"""PostgreSQL down (issue 10, item 5), cut through a fault proxy in front of the real server:
routes that need the database answer 503 with `Retry-After` (never 500, never 401 for a good
token), routes that do not keep working, the outage is logged once, requests fail fast instead
of each waiting for a connection, and everything works again when PostgreSQL is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from crm_bridge.store import TokenRole
from dialer.api.auth import FRESH_SECONDS, TokenVerifier
from tests.api.conftest import Api, open_api
from tests.support.fault_proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def proxied(pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[tuple[Api, FaultProxy]]:
    async with FaultProxy("127.0.0.1", 5432) as proxy:
        async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state",
                            store_dsn=proxy.rewrite_dsn(pg_dsn)) as api:
            yield api, proxy


async def _until_ok(api: Api, token: str, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if (await api.client.get("/v1/calls?limit=1", headers=api.auth(token))).status == 200:
                return
            await asyncio.sleep(0.2)


async def test_a_postgresql_outage_gets_503s_fast_one_log_line_and_recovery(proxied: tuple[Api, FaultProxy]) -> None:
    api, proxy = proxied
    assert (await api.client.get("/v1/calls", headers=api.auth(api.crm))).status == 200  # the token is verified
    never_seen = await api.token(TokenRole.CRM)
    with structlog.testing.capture_logs() as logs:
        proxy.down()
        connections_before = proxy.accepted
        answers = []
        for _ in range(20):
            response = await api.client.get("/v1/calls", headers=api.auth(api.crm))
            answers.append((response.status, (await response.json())["error"], response.headers.get("Retry-After")))
        assert {status for status, _, _ in answers} == {503}
        assert {error for _, error, _ in answers} == {"database_unavailable"}
        assert all(retry is not None and int(retry) >= 1 for _, _, retry in answers)
        # Fail fast: not one connection attempt per request, only the outage's probes.
        assert proxy.accepted - connections_before <= 5

        unknown = await api.client.get("/v1/calls", headers=api.auth(never_seen))
        assert unknown.status == 503  # may be a good token: not 401, not 500
        # What does not need PostgreSQL goes on: an opt-out is durable in the outbox, and in Redis.
        opted = await api.client.post("/v1/opt-outs", json={"phone": "+12125550166", "source": "api"},
                                      headers=api.auth(api.crm))
        assert opted.status == 201, await opted.text()
        assert (await api.client.get("/v1/health/live")).status == 200
        ready = await api.client.get("/v1/health/ready")
        checks = {check["name"]: check for check in (await ready.json())["checks"]}
        assert ready.status == 503 and ready.headers["Retry-After"]
        assert not checks["postgresql"]["ok"] and "PostgreSQL" in checks["postgresql"]["detail"]
        assert checks["redis"]["ok"] and checks["outbox"]["ok"]

        proxy.restore()
        await _until_ok(api, api.crm)
        assert (await api.client.get("/v1/calls", headers=api.auth(never_seen))).status == 200
    events = [entry["event"] for entry in logs]
    assert events.count("crm_database_unavailable") == 1 and events.count("crm_database_back") == 1
    assert (await api.client.get("/v1/health/ready")).status == 200


async def test_a_stalled_postgresql_costs_one_timeout_not_one_per_request(proxied: tuple[Api, FaultProxy]) -> None:
    api, proxy = proxied
    assert (await api.client.get("/v1/calls", headers=api.auth(api.crm))).status == 200
    proxy.stall()  # new connections hang without a byte
    proxy.cut()
    before = proxy.accepted
    statuses = [(await api.client.get("/v1/calls", headers=api.auth(api.crm))).status for _ in range(15)]
    assert set(statuses) == {503}
    assert proxy.accepted - before <= 3  # the others failed at once, without a connection of their own
    proxy.restore()
    await _until_ok(api, api.crm)


async def test_a_revoked_token_stops_working_within_the_cache_time(api: Api) -> None:
    now = [1000.0]
    verifier = TokenVerifier(api.store, clock=lambda: now[0])
    issued = await api.store.issue_token(TokenRole.CRM)
    assert await verifier.verify(issued.secret) is not None
    assert await api.store.revoke_token(issued.token.token_id)  # e.g. `dialer token revoke` elsewhere
    now[0] += FRESH_SECONDS - 1
    assert await verifier.verify(issued.secret) is not None  # still cached
    now[0] += 1.5
    assert await verifier.verify(issued.secret) is None  # revoked within FRESH_SECONDS (10 s)
    # In the process that revoked it, at once.
    other = await api.store.issue_token(TokenRole.CRM)
    assert await verifier.verify(other.secret) is not None
    verifier.forget(other.token.token_id)
    await api.store.revoke_token(other.token.token_id)
    assert await verifier.verify(other.secret) is None


async def test_an_agents_event_stream_opens_while_postgresql_is_down(proxied: tuple[Api, FaultProxy]) -> None:
    """An unknown agent's stream is a 404 (docs/api.md, "Agent sessions"), but the agent cannot be
    looked up while PostgreSQL is down, and the streams keep working without it."""
    api, proxy = proxied
    assert (await api.client.get("/v1/calls", headers=api.auth(api.agent))).status == 200  # the token is verified
    proxy.down()
    try:
        async with api.client.ws_connect(f"/v1/agents/{api.agent_id}/events", headers=api.auth(api.agent)) as socket:
            first = await asyncio.wait_for(socket.receive_json(), 5)
            assert (first["type"], first["agent_id"]) == ("subscribed", api.agent_id)
    finally:
        proxy.restore()
