"""A real process killed with SIGKILL mid-delivery: the next outbox delivers every record once."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from crm_bridge.backoff import Backoff
from crm_bridge.outbox import Outbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CHILD = Path(__file__).with_name("outbox_child.py")
COUNT = 200


async def _spawn(state_dir: Path, dsn: str, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(state_dir), dsn, str(COUNT), mode,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )


async def _read_until(process: asyncio.subprocess.Process, marker: bytes) -> None:
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"child exited before printing {marker!r}")
            if line.startswith(marker):
                return


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def _finish_and_check(state_dir: Path, dsn: str) -> None:
    async with Outbox(state_dir, dsn, backoff=Backoff(initial=0.02, maximum=0.2), prune_applied=False) as outbox:
        assert await outbox.flush(30)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM opt_outs") == COUNT
        assert await conn.fetchval("SELECT count(DISTINCT opt_out_id) FROM opt_outs") == COUNT
        assert await conn.fetchval("SELECT count(*) FROM outbox_applied") == COUNT
    finally:
        await conn.close()


async def test_sigkill_between_pg_commit_and_local_mark(tmp_path: Path, migrated_scratch_dsn: str) -> None:
    child = await _spawn(tmp_path, migrated_scratch_dsn, "hold")
    try:
        await _read_until(child, b"COMMITTED")
        conn = await asyncpg.connect(migrated_scratch_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM opt_outs") == 10, "first batch committed in PG"
        finally:
            await conn.close()
    finally:
        await _kill(child)
    await _finish_and_check(tmp_path, migrated_scratch_dsn)


async def test_sigkill_at_an_arbitrary_moment_of_delivery(tmp_path: Path, migrated_scratch_dsn: str) -> None:
    child = await _spawn(tmp_path, migrated_scratch_dsn, "run")
    conn = await asyncpg.connect(migrated_scratch_dsn)
    try:
        await _read_until(child, b"PUT DONE")
        for _ in range(1000):
            if await conn.fetchval("SELECT count(*) FROM opt_outs") >= COUNT // 4:
                break
            await asyncio.sleep(0.005)
        await _kill(child)
        delivered_before_kill = await conn.fetchval("SELECT count(*) FROM opt_outs")
        assert 0 < delivered_before_kill < COUNT, "the kill landed mid-delivery"
    finally:
        await conn.close()
        if child.returncode is None:
            await _kill(child)
    await _finish_and_check(tmp_path, migrated_scratch_dsn)
