"""`GET /v1/reports/...` over the seeded day: the JSON and the CSV give the recount's numbers;
bad parameters are 4xx problems; agents are refused."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.api.conftest import open_api
from tests.reports.seeding import recount
from tests.reports.test_kpis import DAY, NOW, ZONE, seeded  # noqa: F401 (the module's seeded day)

pytestmark = pytest.mark.timeout(60)


async def test_reports_api(reports_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
                           seeded: Any) -> None:  # noqa: F811
    day, period = seeded
    async with open_api(reports_dsn, redis_url, redis_prefix, tmp_path / "state") as api:
        supervisor = api.auth(await api.token(TokenRole.SUPERVISOR))
        range_ = f"period=range&from={DAY}&tz={ZONE}"
        answer = await api.client.get(f"/v1/reports/agency?{range_}", headers=supervisor)
        assert answer.status == 200, await answer.text()
        body = await answer.json()
        want = recount(day, period.start, period.end, "agency", NOW)["agency"]
        assert body["kpis"]["dials"] == want["dials"] and body["kpis"]["contacts"] == want["contacts"]
        assert body["kpis"]["appts_set"] == want["appts_set"] and body["kpis"]["issued"] == want["issued"]
        assert body["period"]["bucket"] == "hour" and len(body["series"]) == 24
        assert body["period"]["start"] == period.start.isoformat().replace("+00:00", "Z")

        answer = await api.client.get(f"/v1/reports/agents?{range_}&format=csv", headers=supervisor)
        assert answer.status == 200 and answer.content_type == "text/csv"
        rows = {row["key"]: row for row in csv.DictReader(io.StringIO(await answer.text()))}
        per_agent = recount(day, period.start, period.end, "agent", NOW)
        for agent in day.agents:
            assert int(rows[agent]["dials"]) == per_agent[agent]["dials"]
            assert int(rows[agent]["appts_held"]) == per_agent[agent].get("appts_held", 0)

        answer = await api.client.get(f"/v1/reports/campaigns?{range_}", headers=supervisor)
        per_campaign = recount(day, period.start, period.end, "campaign", NOW)
        got = {row["key"]: row for row in (await answer.json())["rows"]}
        for campaign in day.campaigns:
            assert got[campaign]["connected"] == per_campaign[campaign]["connected"]

        answer = await api.client.get("/v1/reports/pipeline?per_stage=3", headers=supervisor)
        stages = (await answer.json())["stages"]
        assert [stage["stage"] for stage in stages][:2] == ["new_lead", "contacted"]

        for query, field in (("period=range", "from"), ("period=week&tz=Nowhere/Else", "tz"),
                             (f"period=range&from={DAY}&to=2026-01-01", "to"), ("period=year", "period"),
                             # A day whose midnight cannot be a UTC time is refused, not a 500.
                             ("period=range&from=9999-12-30&to=9999-12-31", "from"),
                             ("period=range&from=0001-01-01", "from")):
            answer = await api.client.get(f"/v1/reports/agency?{query}", headers=supervisor)
            assert answer.status == 422, query
            assert (await answer.json())["field"] == field
        answer = await api.client.get("/v1/reports/agency?colour=red", headers=supervisor)
        assert answer.status == 400
        answer = await api.client.get("/v1/reports/agency", headers=api.auth(api.agent))
        assert answer.status == 403
