"""Redis stalled for 10 s under a running campaign: the gate blocks while it cannot decide
(fail closed), no lead is parked as if the gate had judged it, and the campaign dials again
within seconds of Redis answering."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from crm_bridge.store import TokenRole
from dialer.campaign.agent import AgentState
from dialer.campaign.dialing import campaign_lead_record
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW
from tests.controller.conftest import dialer_settings, mark_lists_fresh
from tests.support.redis_server import PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _until(predicate: object, within: float, what: str) -> float:
    """Seconds until `predicate()` held; fails after `within`."""
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.timeout(180)
async def test_a_campaign_dials_again_within_seconds_of_redis_returning(
    asterisk: AsteriskInstance, pg_dsn: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        dialer_settings(asterisk, pg_dsn, private_redis.url, "dialer-fault:", tmp_path), redis_url=private_redis.url
    )
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0),
                               drain_seconds=5, campaign_overrides=CAMPAIGN_TUNING) as services:
        await mark_lists_fresh(services, GATE_NOW)
        runtime = services.campaigns
        assert runtime is not None
        suffix = uuid.uuid4().hex[:6]
        campaign_id = f"camp-{suffix}"
        # Busy numbers (ring 1 s, then busy): the agents stay ready, so the campaign keeps dialing.
        phones = [f"+1212{200 + n}3100" for n in range(60)]
        items: list[tuple[str, dict[str, object]]] = [("campaign_upsert", {
            "campaign_id": campaign_id, "name": "Stall", "caller_id": "+18885550123", "dial_mode": "progressive"})]
        agents = [f"sim-stall-{n}-{suffix}" for n in range(3)]
        items += [("agent_upsert", {"agent_id": a, "name": a, "sip_endpoint": f"Local/stall{n}@agent-sim"})
                  for n, a in enumerate(agents)]
        for n, phone in enumerate(phones):
            lead_id = f"lead-stall-{n}-{suffix}"
            items.append(("lead_upsert", {"lead_id": lead_id, "first_name": "Pat", "phones": [phone], "state": "NY",
                                          "zip": "10001"}))
            items.append(("campaign_lead", campaign_lead_record(campaign_id, lead_id)))
        await services.outbox.put_many(items)
        assert await services.outbox.flush(20)
        await services.store.issue_token(TokenRole.CRM, label="fault")
        for agent_id in agents:
            await runtime.login(agent_id, [campaign_id])
        await _until(lambda: all((s := runtime.agent_state(a)) is not None and s.state is AgentState.READY
                                 for a in agents), 20, "agents ready")
        await runtime.start_campaign(campaign_id)
        runner = runtime.campaigns[campaign_id]
        await _until(lambda: runner.counters["dials"] >= 6, 40, "the campaign dialing")

        private_redis.stall()
        await asyncio.sleep(10)
        private_redis.resume()
        dials = runner.counters["dials"]
        waited = await _until(lambda: runner.counters["dials"] > dials, 10,
                              "a dial within 10 s of Redis answering again")
        print(f"dialing again {waited:.1f} s after Redis returned")

        # The stall blocked what it could not decide (fail closed), and parked no lead for good.
        assert runner.blocked.get("gate_unavailable", 0) >= 1
        await runtime.stop_campaign(campaign_id)
        await services.outbox.flush(20)
        connection = await asyncpg.connect(pg_dsn)
        try:
            done = await connection.fetch(
                "SELECT lead_id, done_reason FROM campaign_leads WHERE campaign_id = $1 AND done", campaign_id)
        finally:
            await connection.close()
        assert not [row for row in done if "gate_unavailable" in (row["done_reason"] or "")]
        for agent_id in agents:
            await runtime.logout(agent_id)
        await _until(lambda: not runtime.agents, 15, "agents logged out")
