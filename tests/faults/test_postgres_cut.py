"""PostgreSQL cut for 60 s with a call live (issue 10, "Must show"): every route of the API, asked
again and again through the outage, answers with a status that says what happened (503 with
`Retry-After` for what needs the database), never a 5xx of another kind; the live call goes on and
ends; afterwards its row is closed once and its recording archived, sealed and linked."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.controller.conftest import GATE_NOW, Dialer, dialer_settings, mark_lists_fresh
from tests.support.fault_proxy import FaultProxy
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

CUT_SECONDS = 60.0
TALKS_20_S = "+12125551120"  # a person: answers, hangs up 20 s later (asterisk-config)
LOCAL_AGENT = "Local/1001@agent-sim"  # an agent that answers at once


@pytest.fixture
async def stack(asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str,
                tmp_path: Path) -> AsyncIterator[tuple[Dialer, FaultProxy]]:
    parts = urlsplit(pg_dsn)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        settings = dialer_settings(asterisk, proxy.rewrite_dsn(pg_dsn), redis_url, redis_prefix, tmp_path)
        async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0),
                                   drain_seconds=5) as services:
            await mark_lists_fresh(services)
            crm = (await services.store.issue_token(TokenRole.ADMIN, label="faults")).secret
            async with TestClient(TestServer(services.app)) as client:
                yield Dialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6]), proxy


def _concrete(path: str, call_id: str) -> str:
    """A templated path with its parameters filled: the live call where a call is meant, a name
    that exists nowhere otherwise (a 404 or a 503 is an answer; a 500 is not)."""
    path = path.replace("{call_id}", call_id)
    return re.sub(r"\{[^}]+\}", "unknown-x1", path)


async def _sweep(dialer: Dialer, paths: list[str], call_id: str) -> Counter[tuple[str, int]]:
    seen: Counter[tuple[str, int]] = Counter()
    for path in paths:
        response = await dialer.client.get(_concrete(path, call_id), headers=dialer.auth())
        await response.read()
        seen[(path, response.status)] += 1
        if response.status == 503:
            assert response.headers.get("Retry-After"), path
    return seen


@pytest.mark.timeout(240)
async def test_a_60_second_postgresql_cut_answers_no_500_and_loses_nothing(stack: tuple[Dialer, FaultProxy]) -> None:
    dialer, proxy = stack
    document = await (await dialer.client.get("/v1/openapi.json")).json()
    paths = sorted(path for path, operations in document["paths"].items()
                   if "get" in operations and not path.endswith(("/audio", "/events", "/ws")) and "stream" not in path)
    agent_id = await dialer.agent(LOCAL_AGENT)
    lead_id = await dialer.lead(TALKS_20_S)
    placed = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id}, headers=dialer.auth())
    assert placed.status == 202, await placed.text()
    call_id = (await placed.json())["call_id"]
    await until(lambda: dialer.services.controller.call_status(call_id) == "bridged", 30)

    proxy.down()
    statuses: Counter[tuple[str, int]] = Counter()
    ends = time.monotonic() + CUT_SECONDS
    while time.monotonic() < ends:
        statuses += await _sweep(dialer, paths, call_id)
        placed_in_outage = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                                    headers=dialer.auth())
        statuses[("POST /v1/calls", placed_in_outage.status)] += 1
        await asyncio.sleep(1.0)
    proxy.restore()

    server_errors = {key: count for key, count in statuses.items() if key[1] >= 500 and key[1] != 503}
    assert not server_errors, server_errors
    assert any(status == 503 for _, status in statuses)  # the outage was seen, and said so
    await until(lambda: dialer.services.controller.call_status(call_id) is None, 60)
    assert await dialer.services.outbox.flush(30)

    connection = await asyncpg.connect(dialer.pg_dsn)
    try:
        calls = await connection.fetch("SELECT outcome, ended_at, recording_id FROM calls WHERE call_id = $1", call_id)
        recordings = await connection.fetch("SELECT recording_id, storage_uri FROM recordings WHERE call_id = $1",
                                            call_id)
    finally:
        await connection.close()
    assert len(calls) == 1 and calls[0]["ended_at"] is not None and calls[0]["outcome"] == "answered"
    assert len(recordings) == 1 and recordings[0]["recording_id"] == calls[0]["recording_id"]
    sealed = Path(recordings[0]["storage_uri"].removeprefix("file://"))
    assert (await asyncio.to_thread(sealed.stat)).st_size > 0

