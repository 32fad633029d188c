"""The outbox's disk full under the HTTP API: a write it cannot keep is a 503 the client retries
(`outbox_unavailable`), never a 500, and once there is room the same request is kept and
arrives, once. A real full disk: the outbox's state folder is a small tmpfs (the test run is
root, as the project's scripts are)."""

from __future__ import annotations

import random
from pathlib import Path

import asyncpg
import pytest

from tests.api.conftest import open_api
from tests.faults.test_disk_full import fill, tmpfs

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(60)]


async def test_a_write_the_full_outbox_cannot_keep_is_a_503_then_kept_once_there_is_room(
        pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        async with open_api(pg_dsn, redis_url, redis_prefix, state) as api:
            crm = api.auth(api.crm)
            path = f"/v1/calls/{api.call_id}/disposition"
            junk = fill(state)
            response = await api.client.post(path, json={"code": "no_answer"}, headers=crm)
            body = await response.json()
            # Was a 500 (OutboxError was no fault the API knew).
            assert response.status == 503 and body["error"] == "outbox_unavailable", body
            assert "Retry-After" in response.headers
            # The opt-out route said so already; its detail named "cannot rollback", not the full disk.
            phone = f"+1605557{random.randrange(10_000):04d}"  # 605: no other test dials there
            response = await api.client.post("/v1/opt-outs", json={"phone": phone, "source": "api"}, headers=crm)
            body = await response.json()
            assert response.status == 503 and "database or disk is full" in body["detail"], body
            junk.unlink()
            response = await api.client.post(path, json={"code": "no_answer"}, headers=crm)
            assert response.status == 202, await response.text()
            disposition_id = (await response.json())["disposition_id"]
            assert await api.outbox.flush(10)
            conn = await asyncpg.connect(pg_dsn)
            try:
                rows = await conn.fetchval("SELECT count(*) FROM dispositions WHERE call_id = $1", api.call_id)
                kept = await conn.fetchval("SELECT count(*) FROM dispositions WHERE disposition_id = $1",
                                           disposition_id)
            finally:
                await conn.close()
            assert rows == 1 and kept == 1  # the refused one left nothing behind
