"""`dialer serve` started while PostgreSQL does not answer (issue 10, item 5): it starts, reconciles
Asterisk, says plainly it is not ready and why, answers 503 (never 500) for what needs the database,
and works without a restart once PostgreSQL is back: migrations applied, calls placed and logged."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.store import TokenRole
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.conftest import AUDIT_KEYS_DIR
from tests.controller.conftest import GATE_NOW, Dialer, dialer_settings, mark_lists_fresh
from tests.support.fault_proxy import FaultProxy
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

HANGS_UP_AFTER_4_S = "+12125551104"  # a person: answers, hangs up 4 s later
LOCAL_AGENT = "Local/1001@agent-sim"  # an agent that answers at once (asterisk-config)


@pytest.mark.timeout(200)
async def test_the_dialer_starts_while_postgresql_is_down_and_works_once_it_is_back(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:
    AuditSigningKey.load_or_create(AUDIT_KEYS_DIR, chain_signed=False)  # a dialer that ran before
    parts = urlsplit(pg_dsn)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxy.down()
        settings = dialer_settings(asterisk, proxy.rewrite_dsn(pg_dsn), redis_url, redis_prefix, tmp_path)
        async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0),
                                   drain_seconds=5) as services:
            await mark_lists_fresh(services)
            async with TestClient(TestServer(services.app)) as client:
                live = await client.get("/v1/health/live")
                assert live.status == 200
                ready = await client.get("/v1/health/ready")
                assert ready.status == 503 and "Retry-After" in ready.headers
                checks = {check["name"]: check for check in (await ready.json())["checks"]}
                assert not checks["postgresql"]["ok"] and checks["postgresql"]["detail"]
                assert checks["ari"]["ok"]  # Asterisk is connected and reconciled meanwhile
                refused = await client.get("/v1/calls", headers={"Authorization": "Bearer not-checkable-now"})
                assert refused.status == 503 and "Retry-After" in refused.headers

                proxy.restore()

                async def ready_again() -> bool:
                    return (await client.get("/v1/health/ready")).status == 200

                await until(ready_again, 60)
                crm = (await services.store.issue_token(TokenRole.CRM, label="faults")).secret
                dialer = Dialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])
                agent_id = f"local-{dialer.suffix}"
                await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local agent",
                                                   "sip_endpoint": LOCAL_AGENT})
                lead_id = await dialer.lead(HANGS_UP_AFTER_4_S)
                placed = await client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                           headers=dialer.auth())
                assert placed.status == 202, await placed.text()
                call_id = (await placed.json())["call_id"]
                await until(lambda: services.controller.call_status(call_id) is None, 60)
                assert await services.outbox.flush(30)

    connection = await asyncpg.connect(pg_dsn)
    try:
        call = await connection.fetchrow("SELECT outcome, ended_at, recording_id FROM calls WHERE call_id = $1", call_id)
        recordings = await connection.fetchval("SELECT count(*) FROM recordings WHERE call_id = $1", call_id)
    finally:
        await connection.close()
    assert call is not None and call["outcome"] == "answered" and call["ended_at"] is not None
    assert recordings == 1
