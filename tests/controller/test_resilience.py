"""The controller under failure: Asterisk restarted mid-call, PostgreSQL down mid-call, the
controller itself killed with SIGKILL mid-call."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from dialer.serve import dialer_services
from tests.controller.conftest import (
    GATE_NOW,
    Dialer,
    dialer_settings,
    mark_lists_fresh,
    our_asterisk_objects,
)
from tests.support.child_dialer import ChildDialer, api_headers, child_environment
from tests.support.fault_proxy import FaultProxy
from tests.waiting import until

pytestmark = pytest.mark.integration

LOCAL_AGENT = "Local/1001@agent-sim"
LEAD_TALKS_UNTIL_HUNG_UP = "+12125551000"  # a person: 1 s of ringing, talks until we hang up


async def _wait_for_state(dialer: Dialer, call_id: str, state: str, within: float = 30.0) -> None:
    await until(lambda: dialer.services.controller.call_status(call_id) == state, within)


async def _place(dialer: Dialer, lead_phone: str) -> str:
    agent_id = f"local-{uuid.uuid4().hex[:8]}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local agent", "sip_endpoint": LOCAL_AGENT})
    lead_id = await dialer.lead(lead_phone)
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id}, headers=dialer.auth())
    assert response.status == 202, await response.text()
    return str((await response.json())["call_id"])


@pytest.mark.timeout(150)
async def test_asterisk_restart_mid_call_closes_the_call_and_new_calls_work(dialer: Dialer) -> None:
    call_id = await _place(dialer, LEAD_TALKS_UNTIL_HUNG_UP)
    await _wait_for_state(dialer, call_id, "bridged")
    generation = dialer.services.stream.generation

    await asyncio.to_thread(dialer.asterisk.restart)

    call = await dialer.ended_call(call_id, within=60)
    assert call.outcome is not None and call.ended_at is not None and call.bridged_at is not None
    async with asyncio.timeout(30):
        assert await dialer.services.stream.wait_connected(after_generation=generation) > generation

    # Afterwards the controller takes new calls: a person who hangs up 3 s after answering.
    second = await _place(dialer, "+12125551103")
    after = await dialer.ended_call(second, within=60)
    assert after.outcome is not None and after.outcome.value == "answered"
    await dialer.nothing_left()


@pytest.fixture
async def dialer_behind_proxy(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Any:
    from urllib.parse import urlsplit

    parts = urlsplit(pg_dsn)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        settings = dialer_settings(asterisk, proxy.rewrite_dsn(pg_dsn), redis_url, redis_prefix, tmp_path)
        async with dialer_services(
            settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0), drain_seconds=5
        ) as services:
            await mark_lists_fresh(services)
            crm = (await services.store.issue_token(TokenRole.CRM)).secret
            async with TestClient(TestServer(services.app)) as client:
                yield Dialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6]), proxy


@pytest.mark.timeout(150)
async def test_postgres_down_during_a_call_loses_nothing_and_writes_once(dialer_behind_proxy: Any) -> None:
    dialer, proxy = dialer_behind_proxy
    call_id = await _place(dialer, "+12125551104")  # a person who hangs up 4 s after answering
    await _wait_for_state(dialer, call_id, "bridged")
    proxy.down()
    await until(lambda: dialer.services.controller.call_status(call_id) is None, 60)
    await asyncio.sleep(1.0)
    assert dialer.services.outbox.stats().pending > 0  # the end of the call is waiting for PostgreSQL
    proxy.restore()
    assert await dialer.services.outbox.flush(30)

    connection = await asyncpg.connect(dialer.pg_dsn)
    try:
        calls = await connection.fetch("SELECT outcome, ended_at, recording_id FROM calls WHERE call_id = $1", call_id)
        recordings = await connection.fetch("SELECT recording_id FROM recordings WHERE call_id = $1", call_id)
        lead_number = "+12125551104"
        decisions = await connection.fetch("SELECT allowed FROM compliance_decisions WHERE phone = $1", lead_number)
    finally:
        await connection.close()
    assert len(calls) == 1 and calls[0]["outcome"] == "answered" and calls[0]["ended_at"] is not None
    assert len(recordings) == 1 and recordings[0]["recording_id"] == calls[0]["recording_id"]
    assert [row["allowed"] for row in decisions] == [True, True]  # request and recheck, once each


# ---- SIGKILL of the controller ---------------------------------------------------------------
@pytest.mark.timeout(180)
async def test_controller_killed_mid_call_is_reconciled_on_restart(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    from crm_bridge.store import CrmStore

    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    env = child_environment(settings, tmp_path / "state", tmp_path / "recordings", free_local_port(),
                            tmp_path / "cache")
    child = ChildDialer(env, tmp_path / "child.log")
    await child.start()
    try:
        headers = await api_headers(pg_dsn, TokenRole.CRM, "resilience")
        store = await CrmStore.open(pg_dsn)
        try:
            agent_id, lead_id = f"local-{uuid.uuid4().hex[:8]}", f"lead-{uuid.uuid4().hex[:8]}"
            await _seed(pg_dsn, agent_id, lead_id)
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{child.url}/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id}, headers=headers
                ) as response:
                    assert response.status == 202, await response.text()
                    call_id = (await response.json())["call_id"]

            async def reached(moment: str) -> bool:
                found = await store.get_call(call_id)
                return found is not None and getattr(found, moment) is not None

            await until(lambda: reached("bridged_at"), 30, 0.2)
            child.kill()

            await child.start()
            await until(lambda: reached("ended_at"), 30, 0.2)
            call = await store.get_call(call_id)
            assert call is not None and call.outcome is not None and call.outcome.value == "answered"
            assert call.hangup_cause_text == "controller restarted during the call"
            connection = await asyncpg.connect(pg_dsn)
            try:
                rows = await connection.fetch("SELECT count(*) AS n FROM calls WHERE call_id = $1", call_id)
                decisions = await connection.fetch(
                    "SELECT count(*) AS n FROM compliance_decisions WHERE lead_id = $1", lead_id
                )
            finally:
                await connection.close()
            assert rows[0]["n"] == 1 and decisions[0]["n"] == 2
            async def nothing_left() -> bool:
                return not await our_asterisk_objects(asterisk)

            await until(nothing_left, 20)
        finally:
            await store.close()
    finally:
        child.stop()


async def _seed(pg_dsn: str, agent_id: str, lead_id: str) -> None:
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(
            "INSERT INTO agents (agent_id, name, sip_endpoint) VALUES ($1, 'Local agent', $2)", agent_id, LOCAL_AGENT
        )
        await connection.execute(
            "INSERT INTO leads (lead_id, first_name, phones) VALUES ($1, 'Kim', $2)", lead_id, [LEAD_TALKS_UNTIL_HUNG_UP]
        )
    finally:
        await connection.close()
