"""The KPI queries against a seeded day: exactly what an independent recount of the same rows
gives, for the agency, per agent and per campaign; periods in the agency's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from crm_bridge import reports
from tests.reports.seeding import build_day, recount, write_day

pytestmark = pytest.mark.timeout(60)
ZONE = "America/Chicago"
DAY = date(2026, 11, 18)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
INTS = ("dials", "answered", "people", "connected", "abandoned", "inbound", "handled", "contacts", "appts_set",
        "appts_held", "app_pending", "issued", "new_leads", "leads_dialed")
SECONDS = ("talk_seconds", "wrap_seconds", "busy_seconds", "available_seconds", "paused_seconds")


@pytest.fixture(scope="module")
def seeded(reports_dsn: str) -> Any:
    period = reports.period_of("range", ZONE, NOW, first=DAY)
    day = build_day(period.start)

    async def write() -> None:
        conn = await asyncpg.connect(reports_dsn)
        try:
            await write_day(conn, day)
        finally:
            await conn.close()

    import asyncio
    asyncio.run(write())
    return day, period


def test_periods_in_the_agency_zone() -> None:
    now = datetime(2026, 11, 4, 5, 30, tzinfo=UTC)  # still Nov 3 in Chicago (UTC-6)
    today = reports.period_of("today", ZONE, now)
    assert today.first_day == date(2026, 11, 3) and today.start == datetime(2026, 11, 3, 6, tzinfo=UTC)
    assert today.end - today.start == timedelta(hours=24) and today.bucket == "hour"
    week = reports.period_of("week", ZONE, now)
    assert week.first_day == date(2026, 11, 2) and week.last_day == date(2026, 11, 8)
    month = reports.period_of("month", ZONE, now)
    assert (month.first_day, month.last_day) == (date(2026, 11, 1), date(2026, 11, 30))
    # Daylight saving ended on Nov 1: the month is one hour longer than 30 days.
    assert month.end - month.start == timedelta(days=30, hours=1)
    assert reports.period_of("month", ZONE, datetime(2026, 3, 15, tzinfo=UTC)).end - \
        reports.period_of("month", ZONE, datetime(2026, 3, 15, tzinfo=UTC)).start == timedelta(days=31, hours=-1)
    with pytest.raises(reports.ReportError) as error:
        reports.period_of("range", ZONE, now)
    assert error.value.field == "from"
    with pytest.raises(reports.ReportError):
        reports.period_of("range", ZONE, now, first=date(2026, 2, 1), last=date(2026, 1, 1))
    with pytest.raises(reports.ReportError):
        reports.period_of("today", "Mars/Olympus", now)


def _check(rows: list[reports.Kpis], expected: dict[str, dict[str, Any]]) -> None:
    got = {row.key: row.as_dict() for row in rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        for name in INTS:
            assert got[key][name] == int(want.get(name, 0)), (key, name)
        for name in SECONDS:
            assert got[key][name] == pytest.approx(want.get(name, 0.0), abs=0.01), (key, name)
        if "speed_to_lead_median_seconds" in want:
            assert got[key]["speed_to_lead_median_seconds"] == pytest.approx(
                want["speed_to_lead_median_seconds"], abs=0.01)


@pytest.mark.parametrize("group", ["agency", "agent", "campaign"])
async def test_kpis_equal_the_recount(reports_dsn: str, seeded: Any, group: str) -> None:
    day, period = seeded
    conn = await asyncpg.connect(reports_dsn)
    try:
        rows = await reports.kpis(conn, period, reports.GroupBy(group), now=NOW)
    finally:
        await conn.close()
    expected = recount(day, period.start, period.end, group, NOW)
    _check(rows, expected)
    agency = rows[0] if group == "agency" else None
    if agency is not None:
        assert agency.dials > 300 and agency.contacts > 30 and agency.appts_set > 5
        assert agency.rates["contact_rate"] == pytest.approx(agency.contacts / agency.dials)
        assert agency.rates["occupancy"] == pytest.approx(
            agency.busy_seconds / (agency.busy_seconds + agency.available_seconds))


async def test_one_agent_and_one_campaign(reports_dsn: str, seeded: Any) -> None:
    day, period = seeded
    conn = await asyncpg.connect(reports_dsn)
    try:
        agent = day.agents[1]
        rows = await reports.kpis(conn, period, reports.GroupBy.AGENT, reports.Scope(agent_id=agent), now=NOW)
        assert [row.key for row in rows] == [agent]
        _check(rows, {agent: recount(day, period.start, period.end, "agent", NOW)[agent]})
        campaign = day.campaigns[0]
        rows = await reports.kpis(conn, period, reports.GroupBy.CAMPAIGN, reports.Scope(campaign_id=campaign),
                                  now=NOW)
        _check(rows, {campaign: recount(day, period.start, period.end, "campaign", NOW)[campaign]})
    finally:
        await conn.close()


async def test_series_adds_up_to_the_day(reports_dsn: str, seeded: Any) -> None:
    _day, period = seeded
    conn = await asyncpg.connect(reports_dsn)
    try:
        points = await reports.series(conn, period)
        agency = (await reports.kpis(conn, period, reports.GroupBy.AGENCY, now=NOW))[0]
    finally:
        await conn.close()
    assert len(points) == 24 and points[0]["at"] == "2026-11-18T00:00:00"
    assert sum(point["dials"] for point in points) == agency.dials
    assert sum(point["appts_set"] for point in points) == agency.appts_set
    # Seeded calls are from 9 a.m. local on: nothing before (the hour before the day is outside).
    assert all(point["dials"] == 0 for point in points[:9])


async def test_pipeline_board(reports_dsn: str, seeded: Any) -> None:
    day, _ = seeded
    conn = await asyncpg.connect(reports_dsn)
    try:
        columns = await reports.pipeline(conn, NOW, per_stage=5)
    finally:
        await conn.close()
    counts = {column.stage.value: column.count for column in columns}
    for stage in counts:
        assert counts[stage] == sum(1 for lead in day.leads if lead["pipeline_stage"] == stage)
    moved = {d["lead_id"]: d["disposed_at"] for d in sorted(day.dispositions, key=lambda d: d["disposed_at"])
             if d["stage_after"] != d["stage_before"]}
    for column in columns:
        assert len(column.leads) == min(5, column.count)
        for lead in column.leads:
            created = next(row["created_at"] for row in day.leads if row["lead_id"] == lead.lead_id)
            assert lead.entered_at == moved.get(lead.lead_id, created)
            assert lead.age_seconds == pytest.approx((NOW - lead.entered_at).total_seconds())
