"""A full disk under the archive, and under the outbox, while calls end: the recording is not
lost. Asterisk's copy stays in its spool (the pending state) until the sealed file and the CRM
row are both durable; once the disk has room, the sweep archives it and the row arrives, once.

Each test mounts its own small tmpfs (the test run is root, as the project's scripts are)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.ari.auth import basic_auth_header
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.controller.conftest import GATE_NOW, Dialer, dialer_settings, mark_lists_fresh
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

LOCAL_AGENT = "Local/1001@agent-sim"
LEAD_TALKS_3_S = "+12125551103"  # a person: 1 s of ringing, talks 3 s, hangs up


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` (a file the test removes to free it again)."""
    junk = disk / "junk"
    with junk.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return junk


async def stored_recordings(asterisk: AsteriskInstance) -> list[str]:
    headers = basic_auth_header(asterisk.config.ari_user, asterisk.config.ari_password)
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{asterisk.ari_url}/recordings/stored") as response:
            return [item["name"] for item in await response.json()]


@contextlib.asynccontextmanager
async def dialer_on(asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
                    **paths: str) -> AsyncIterator[Dialer]:
    settings = dataclasses.replace(dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path), **paths)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=8.0),
                               drain_seconds=5) as services:
        await mark_lists_fresh(services)
        crm = (await services.store.issue_token(TokenRole.CRM, label="faults")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Dialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])


async def _place(dialer: Dialer, phone: str) -> str:
    agent_id = f"local-{uuid.uuid4().hex[:8]}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local agent", "sip_endpoint": LOCAL_AGENT})
    lead_id = await dialer.lead(phone)
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    return str((await response.json())["call_id"])


async def _archived_once(dialer: Dialer, call_id: str) -> Any:
    await dialer.services.outbox.flush(20)
    rows = await dialer.fetch("SELECT * FROM recordings WHERE call_id = $1", call_id)
    assert len(rows) == 1, rows
    sealed = Path(rows[0]["storage_uri"].removeprefix("file://"))
    assert (await asyncio.to_thread(sealed.stat)).st_size > 0
    (call,) = await dialer.fetch("SELECT recording_id FROM calls WHERE call_id = $1", call_id)
    assert call["recording_id"] == rows[0]["recording_id"]
    return rows[0]


async def _recordings_check(dialer: Dialer) -> tuple[bool, int]:
    """The readiness check of recordings waiting to be archived: (ok, the readiness status)."""
    ready = await dialer.client.get("/v1/health/ready")
    checks = {check["name"]: check for check in (await ready.json())["checks"]}
    return bool(checks["recordings"]["ok"]), ready.status


@pytest.mark.timeout(150)
async def test_a_full_archive_disk_keeps_the_recording_until_there_is_room(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "archive", "2m") as archive:
        async with dialer_on(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path,
                             recordings_root=str(archive)) as dialer:
            junk = fill(archive)
            call_id = await _place(dialer, LEAD_TALKS_3_S)
            call = await dialer.ended_call(call_id, within=60)
            assert call.outcome is not None and call.outcome.value == "answered"
            # The archive could not take it: no row, and Asterisk still holds the recording.
            name = f"{call_id}-recording"
            assert name in await stored_recordings(asterisk)
            assert await dialer.fetch("SELECT * FROM recordings WHERE call_id = $1", call_id) == []
            archiver = dialer.services.archiver
            assert archiver is not None
            assert await archiver.sweep(lambda: set()) == 0  # the disk is still full: it waits, and says so
            assert await _recordings_check(dialer) == (False, 503)
            junk.unlink()
            assert await archiver.sweep(lambda: set()) == 1
            await _archived_once(dialer, call_id)
            assert name not in await stored_recordings(asterisk)
            assert archiver.pending == 0
            assert (await _recordings_check(dialer))[0]


@pytest.mark.timeout(150)
async def test_a_full_outbox_disk_keeps_the_recording_and_the_rows_until_there_is_room(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "state", "8m") as state:
        async with dialer_on(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path, state_root=str(state)) as dialer:
            call_id = await _place(dialer, LEAD_TALKS_3_S)
            await until(lambda: dialer.services.controller.call_status(call_id) == "bridged", 30)
            junk = fill(state)  # the call's end, its row and its recording's row meet a full disk
            await until(lambda: dialer.services.controller.call_status(call_id) is None, 40)
            name = f"{call_id}-recording"
            assert name in await stored_recordings(asterisk)
            junk.unlink()
            archiver = dialer.services.archiver
            assert archiver is not None
            assert await archiver.sweep(lambda: set()) == 1
            row = await _archived_once(dialer, call_id)
            assert row["recording_id"] == name
            ended = await dialer.ended_call(call_id, within=30)
            assert ended.ended_at is not None and ended.outcome is not None
            assert name not in await stored_recordings(asterisk)
