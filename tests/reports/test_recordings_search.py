"""`GET /v1/recordings` searched by agent, campaign, time, disposition and duration, page by page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from crm_bridge.store import TokenRole
from tests.api.conftest import open_api

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 10, 5, 15, tzinfo=UTC)


async def test_recordings_search(reports_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(reports_dsn)
    try:
        for n in range(12):
            call_id = f"srch-call-{n}"
            await conn.execute(
                "INSERT INTO calls (call_id, version, direction, agent_id, campaign_id, requested_at) "
                "VALUES ($1, 1, 'outbound', $2, $3, $4)", call_id, f"srch-agent-{n % 2}", f"srch-cmp-{n % 3}",
                T0 + timedelta(minutes=n))
            await conn.execute(
                "INSERT INTO recordings (recording_id, call_id, lead_id, storage_uri, format, duration_seconds, "
                "sha256, recorded_at) VALUES ($1, $2, $3, 'file:x', 'opus', $4, $5, $6)",
                f"srch-rec-{n:02d}", call_id, f"srch-lead-{n}", float(10 * n), "0" * 64, T0 + timedelta(minutes=n))
            await conn.execute(
                "INSERT INTO dispositions (disposition_id, call_id, code, disposed_at) VALUES ($1, $2, $3, $4)",
                f"srch-d-{n}", call_id, "appointment_set" if n % 4 == 0 else "contacted", T0 + timedelta(minutes=n))
    finally:
        await conn.close()
    async with open_api(reports_dsn, redis_url, redis_prefix, tmp_path / "state") as api:
        headers = api.auth(await api.token(TokenRole.SUPERVISOR))

        async def ids(query: str) -> list[str]:
            found: list[str] = []
            url: str | None = f"/v1/recordings?{query}"
            while url is not None:
                answer = await api.client.get(url, headers=headers)
                assert answer.status == 200, await answer.text()
                body = await answer.json()
                found += [row["recording_id"] for row in body["recordings"]]
                url = body["next"]
            return found

        assert await ids("agent_id=srch-agent-1&limit=2") == [f"srch-rec-{n:02d}" for n in (11, 9, 7, 5, 3, 1)]
        assert await ids("campaign_id=srch-cmp-0&disposition=appointment_set") == ["srch-rec-00"]
        assert await ids("disposition=appointment_set&limit=1") == ["srch-rec-08", "srch-rec-04", "srch-rec-00"]
        since, until = quote((T0 + timedelta(minutes=3)).isoformat()), quote((T0 + timedelta(minutes=6)).isoformat())
        assert await ids(f"since={since}&until={until}") == ["srch-rec-05", "srch-rec-04", "srch-rec-03"]
        assert await ids("min_seconds=95&max_seconds=100&agent_id=srch-agent-0") == ["srch-rec-10"]
        assert await ids("min_seconds=90&max_seconds=100") == ["srch-rec-10", "srch-rec-09"]
        answer = await api.client.get("/v1/recordings", headers=headers)
        assert answer.status == 422
        answer = await api.client.get("/v1/recordings?disposition=maybe", headers=headers)
        assert answer.status == 422 and (await answer.json())["field"] == "disposition"
