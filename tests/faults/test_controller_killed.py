"""The controller killed (SIGKILL) with a click-to-call call, a campaign call and a supervisor's
monitor live, then started again: every call row closed once, the monitor's row closed, the
campaign lead given its outcome and next attempt (not redialed at once), every call's recording
archived and sealed (none left in Asterisk's spool), nothing of ours left in Asterisk."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from crm_bridge.store import TokenRole
from dialer.ari.auth import basic_auth_header
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from dialer.runtime.reconcile import RESTARTED
from tests.controller.conftest import dialer_settings
from tests.support.child_dialer import ChildDialer, api_headers, child_environment

pytestmark = [pytest.mark.integration, pytest.mark.fault]

TALKS_UNTIL_HUNG_UP = ("+12125551000", "+12125561000")  # people: 1 s of ringing, talk until hung up


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def _until(check: Callable[[], Any], within: float, what: str) -> Any:
    async with asyncio.timeout(within):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.3)
    raise AssertionError(what)


async def _ours_in_asterisk(asterisk: AsteriskInstance) -> dict[str, list[str]]:
    headers = basic_auth_header(asterisk.config.ari_user, asterisk.config.ari_password)
    found: dict[str, list[str]] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        for kind in ("channels", "bridges", "recordings/stored"):
            async with session.get(f"{asterisk.ari_url}/{kind}") as response:
                items = await response.json()
            names = [item.get("id") or item.get("name") for item in items]
            found[kind] = [n for n in names if n and n.startswith(("call-", "cmp-", "mon-"))]
    return found


@pytest.mark.timeout(240)
async def test_a_killed_controller_leaves_nothing_open_and_loses_no_recording(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
    softphone_factory: Any,
) -> None:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    env = child_environment(settings, tmp_path / "state", tmp_path / "recordings", free_local_port(),
                            tmp_path / "cache")
    child = ChildDialer(env, tmp_path / "child.log")
    suffix = uuid.uuid4().hex[:6]
    c2c_agent, campaign_agent = f"c2c-{suffix}", f"camp-agent-{suffix}"
    campaign_id, c2c_lead, campaign_lead = f"camp-{suffix}", f"lead-c2c-{suffix}", f"lead-camp-{suffix}"
    await child.start()
    try:
        connection = await asyncpg.connect(pg_dsn)
        try:
            await connection.execute(
                "INSERT INTO agents (agent_id, name, sip_endpoint) VALUES ($1, 'C2C', 'Local/1101@agent-sim'), "
                "($2, 'Campaign', 'Local/1102@agent-sim')", c2c_agent, campaign_agent)
            await connection.execute(
                "INSERT INTO leads (lead_id, first_name, phones, state, zip) VALUES "
                "($1, 'Kim', $3, 'NY', '10001'), ($2, 'Lee', $4, 'NY', '10001')",
                c2c_lead, campaign_lead, [TALKS_UNTIL_HUNG_UP[0]], [TALKS_UNTIL_HUNG_UP[1]])
            await connection.execute(
                "INSERT INTO campaigns (campaign_id, name, caller_id, dial_mode) "
                "VALUES ($1, 'Killed', '+18885550123', 'progressive')", campaign_id)
            await connection.execute(
                "INSERT INTO campaign_leads (membership_id, campaign_id, lead_id) VALUES ($1 || ':' || $2, $1, $2)",
                campaign_id, campaign_lead)
        finally:
            await connection.close()
        softphone_factory("supervisor03")
        headers = await api_headers(pg_dsn, TokenRole.ADMIN, "faults")
        async with aiohttp.ClientSession(base_url=child.url, headers=headers) as api:
            async with api.post("/v1/calls", json={"lead_id": c2c_lead, "agent_id": c2c_agent}) as response:
                assert response.status == 202, await response.text()
                c2c_call = (await response.json())["call_id"]
            async with api.post(f"/v1/agents/{campaign_agent}/login", json={"campaign_ids": [campaign_id]}) as response:
                assert response.status == 202, await response.text()

            async def agent_ready() -> bool:
                async with api.get(f"/v1/agents/{campaign_agent}/state") as answer:
                    return answer.status == 200 and (await answer.json())["state"] == "ready"

            await _until(agent_ready, 30, "campaign agent ready")
            async with api.post(f"/v1/campaigns/{campaign_id}/start") as response:
                assert response.status == 202, await response.text()

            async def both_bridged() -> list[Any]:
                async with api.get("/v1/calls/live") as answer:
                    live = (await answer.json())["calls"]
                bridged = [call for call in live if call["connected"]]
                return bridged if len(bridged) == 2 else []

            live = await _until(both_bridged, 60, "both calls connected")
            campaign_call = next(call["call_id"] for call in live if call["kind"] == "campaign")
            async with api.post(f"/v1/calls/{c2c_call}/monitor",
                                json={"endpoint": "supervisor03", "mode": "listen"}) as response:
                assert response.status == 202, await response.text()
                monitor_id = (await response.json())["monitor_id"]

            async def monitoring() -> bool:
                async with api.get(f"/v1/monitors/{monitor_id}") as answer:
                    body = await answer.json()
                    return bool(body["state"] == "connected" and body["mode_active"])

            await _until(monitoring, 40, "the supervisor listening")
            await asyncio.sleep(2)  # some audio recorded

        child.kill()
        await child.start()

        async def closed() -> bool:
            rows = await _fetch(pg_dsn, "SELECT call_id, ended_at, hangup_cause_text FROM calls WHERE call_id = ANY($1)",
                                [c2c_call, campaign_call])
            return len(rows) == 2 and all(row["ended_at"] is not None for row in rows)

        await _until(closed, 60, "both call rows closed")
        rows = await _fetch(pg_dsn, "SELECT call_id, hangup_cause_text FROM calls WHERE call_id = ANY($1)",
                            [c2c_call, campaign_call])
        assert {row["hangup_cause_text"] for row in rows} == {RESTARTED}

        async def monitor_closed() -> list[asyncpg.Record]:
            return [r for r in await _fetch(pg_dsn, "SELECT * FROM monitor_sessions WHERE monitor_id = $1", monitor_id)
                    if r["state"] == "ended"]

        (session,) = await _until(monitor_closed, 30, "the monitor's row closed")
        assert session["end_reason"] == "controller_restarted" and session["ended_at"] is not None

        async def lead_scheduled() -> list[asyncpg.Record]:
            return [r for r in await _fetch(pg_dsn, "SELECT * FROM campaign_leads WHERE lead_id = $1", campaign_lead)
                    if r["last_outcome"] is not None]

        (membership,) = await _until(lead_scheduled, 30, "the campaign lead's outcome")
        assert membership["last_call_id"] == campaign_call
        assert membership["done"] or membership["next_attempt_at"] is not None

        async def recordings_archived() -> list[asyncpg.Record]:
            found = await _fetch(pg_dsn, "SELECT * FROM recordings WHERE call_id = ANY($1)", [c2c_call, campaign_call])
            return found if len(found) == 2 else []

        recordings = await _until(recordings_archived, 90, "both calls' recordings archived")
        for recording in recordings:
            path = Path(recording["storage_uri"].removeprefix("file://"))
            assert (await asyncio.to_thread(path.stat)).st_size > 0 and path.name.endswith(".sealed")
        for kind, left in (await _ours_in_asterisk(asterisk)).items():
            if kind == "recordings/stored":
                assert left == [], left
        async def nothing_left() -> bool:
            return not any((await _ours_in_asterisk(asterisk)).values())

        await _until(nothing_left, 30, "nothing of ours left in Asterisk")
    finally:
        child.stop()
