"""Two controllers (`dialer serve` child processes with `[controller] lease`) sharing PostgreSQL
and Redis, driving both nodes of the cluster (docs/cluster.md).

Controller A takes the lease and is active; B waits on standby. Four simulated agents log in
and a progressive campaign runs on A, with calls on both nodes. A is SIGKILLed mid-campaign:
B holds the lease within 10 s, closes the calls A left (once), adopts the agents' legs, and
runs the campaign on; at the end every calls row is closed, once, and no lead was dialed while
another call to it was live. The failover time is printed (`-s`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from compliance_rules.store import DncStore
from crm_bridge.migrate import ensure_schema
from crm_bridge.outbox import Outbox
from crm_bridge.store import TokenRole
from dialer.campaign.dialing import campaign_lead_record
from tests.campaign.conftest import GATE_NOW
from tests.cluster.conftest import ClusterUnderTest
from tests.cluster.controller import Controller
from tests.conftest import AUDIT_KEYS_DIR
from tests.controller.conftest import STATE_LISTS
from tests.support.child_dialer import api_headers

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(240)]

async def _until(predicate: Any, within: float, what: str, every: float = 0.1) -> float:
    """Wait until `predicate()` (sync or async) holds; the monotonic time it did."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within} s: {what}")
        await asyncio.sleep(every)


@pytest.fixture
def controllers(cluster: ClusterUnderTest, pg_dsn: str, redis_url: str, redis_prefix: str,
                tmp_path: Path) -> Iterator[tuple[Controller, Controller]]:
    first = cluster.nodes[0]
    config = tmp_path / "dialer.toml"
    config.write_text("".join(
        f'[[nodes]]\nname = "node{index}"\nari_url = "{node.ari_url}"\nari_user = "{node.config.ari_user}"\n'
        f'ari_password = "{node.config.ari_password}"\n\n' for index, node in enumerate(cluster.nodes, start=1)))
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(tmp_path)),
        "DIALER_CONFIG": str(config), "DIALER_MODE": "development", "DIALER_PG_DSN": pg_dsn,
        "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix,
        "DIALER_ARI_PASSWORD": first.config.ari_password, "DIALER_ARI_APP": first.config.ari_app,
        "DIALER_AUDIT_KEYS_DIR": str(AUDIT_KEYS_DIR), "DIALER_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "DIALER_RECORDING_KEYS_DIR": str(tmp_path / "recording-keys"), "DIALER_CONTROLLER_LEASE": "true",
        "DIALER_LOG_FORMAT": "json", "DIALER_LOG_LEVEL": "info", "DIALER_INSTANCE": f"failover-{uuid.uuid4().hex[:6]}",
    }
    pair = (Controller("a", env, tmp_path), Controller("b", env, tmp_path))
    yield pair
    for controller in pair:
        controller.stop()


async def _seed(pg_dsn: str, workdir: Path, items: list[tuple[str, dict[str, Any]]]) -> None:
    await ensure_schema(pg_dsn)
    async with Outbox(workdir / "seed-state", pg_dsn) as outbox:
        await outbox.put_many(items)
        assert await outbox.flush(20)


async def _rows(pg_dsn: str, campaign_id: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        return list(await connection.fetch("SELECT * FROM calls WHERE campaign_id = $1", campaign_id))
    finally:
        await connection.close()


async def test_the_standby_takes_over_within_10_s_of_the_active_controller_being_killed(
        cluster: ClusterUnderTest, controllers: tuple[Controller, Controller], pg_dsn: str, redis_url: str,
        redis_prefix: str, tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    active, standby = controllers
    suffix = uuid.uuid4().hex[:6]
    campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
    agents = [f"sim{n}-{suffix}" for n in range(1, 5)]
    # People in New York: 1 s of ringing, 20 s of talk.
    exchange = 500 + int(uuid.uuid4().hex[:4], 16) % 460
    people = [f"+1212{exchange + n}1120" for n in range(36)]
    items: list[tuple[str, dict[str, Any]]] = [("campaign_upsert", {
        "campaign_id": campaign_id, "name": "Failover", "caller_id": "+18885550123", "dial_mode": "progressive",
        "seller_name": "Acme Insurance", "dnc_callback_number": "+18885550199", "amd_settings": {"machine_action": "hangup"},
    })]
    items += [("agent_upsert", {"agent_id": agent_id, "name": agent_id, "sip_endpoint": f"Local/sim{n}@agent-sim"})
              for n, agent_id in enumerate(agents, start=1)]
    for phone in people:
        lead_id = f"lead-{uuid.uuid4().hex[:12]}"
        items.append(("lead_upsert", {"lead_id": lead_id, "first_name": "Pat", "last_name": "Doe", "phones": [phone],
                                      "state": "NY", "zip": "10001"}))
        items.append(("campaign_lead", campaign_lead_record(campaign_id, lead_id)))
    await _seed(pg_dsn, tmp_path, items)
    redis = aioredis.from_url(redis_url)
    try:
        dnc = DncStore(redis, redis_prefix)
        await dnc.set_list_date("federal", GATE_NOW.date())
        for state in STATE_LISTS:
            await dnc.set_list_date(f"state:{state}", GATE_NOW.date())
    finally:
        await redis.aclose()
    auth = await api_headers(pg_dsn, TokenRole.SUPERVISOR, "failover test")

    active.spawn()
    await _until(lambda: "controller a active" in active.text(), 60, "A active")
    standby.spawn()
    await _until(lambda: "controller b on standby" in standby.text(), 60, "B on standby")

    async with aiohttp.ClientSession(headers=auth) as http:
        async def ready(controller: Controller) -> bool:
            try:
                async with http.get(f"{controller.url}/v1/health/ready") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await _until(lambda: ready(active), 60, "A ready", every=0.5)
        for agent_id in agents:
            async with http.post(f"{active.url}/v1/agents/{agent_id}/login",
                                 json={"campaign_ids": [campaign_id]}) as response:
                assert response.status == 202, await response.text()
        await asyncio.sleep(3)  # the agents' legs up
        async with http.post(f"{active.url}/v1/campaigns/{campaign_id}/start") as response:
            assert response.status in (200, 202), await response.text()

        async def bridged() -> int:
            return sum(1 for row in await _rows(pg_dsn, campaign_id) if row["bridged_at"] is not None)

        await _until(lambda: bridged(), 90, "calls bridged on A", every=0.5)
        await asyncio.sleep(2)
        killed_at = time.monotonic()
        killed_wall = time.time()
        active.kill()

        taken = await _until(lambda: "controller b active" in standby.text(), 15, "B active")
        ready_at = await _until(lambda: ready(standby), 30, "B ready", every=0.2)

        async def dialed_after() -> bool:
            return any(row["requested_at"].timestamp() > killed_wall for row in await _rows(pg_dsn, campaign_id))

        first_dial = await _until(dialed_after, 60, "B dials the campaign", every=0.3)
        print(f"\nfailover: lease taken {taken - killed_at:.1f} s after SIGKILL, ready {ready_at - killed_at:.1f} s, "
              f"first dial {first_dial - killed_at:.1f} s")
        assert taken - killed_at < 10.0
        async with http.get(f"{standby.url}/metrics") as response:
            assert "dialer_controller_lease_token 2.0" in await response.text()  # A held token 1

        await asyncio.sleep(5)
        async with http.post(f"{standby.url}/v1/campaigns/{campaign_id}/stop") as response:
            assert response.status in (200, 202), await response.text()

        async def all_closed() -> bool:
            rows = await _rows(pg_dsn, campaign_id)
            return bool(rows) and all(row["ended_at"] is not None for row in rows)

        await _until(all_closed, 90, "every call closed", every=0.5)
        for agent_id in agents:
            async with http.post(f"{standby.url}/v1/agents/{agent_id}/logout") as response:
                assert response.status in (200, 202, 404, 409), await response.text()

    rows = await _rows(pg_dsn, campaign_id)
    assert all(row["outcome"] is not None for row in rows)
    left_by_a = [row for row in rows if row["requested_at"].timestamp() < killed_wall
                 and row["ended_at"].timestamp() > killed_wall]
    after = [row for row in rows if row["requested_at"].timestamp() > killed_wall]
    assert after, "B placed no call"
    # The agents' legs were adopted by B: calls after the takeover were bridged with them.
    assert any(row["bridged_at"] is not None and row["agent_id"] in agents for row in after)
    # No lead dialed while another call to it was live.
    spans: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        spans.setdefault(row["lead_number"], []).append((row["requested_at"].timestamp(), row["ended_at"].timestamp()))
    for lead_spans in spans.values():
        lead_spans.sort()
        assert all(start >= end for (_, end), (start, _) in itertools.pairwise(lead_spans)), lead_spans
    assert "lease_lost" not in standby.text()
    print(f"calls: {len(rows)}, left open by A and closed by B: {len(left_by_a)}, placed by B: {len(after)}")
