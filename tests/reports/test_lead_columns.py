"""The figures migration 0020's triggers keep on each lead.

Speed-to-lead from each lead's first dial: the reports
give exactly what the raw computation over `calls` gives (`rollups=False`), for leads never
dialed, dialed "before" they were created (a clock skew), dialed several times (equal times
included), dialed before the lead row arrived, and after a call's agent is set by a later
snapshot, a call moves to another lead, turns inbound or is deleted, or a lead is re-dated; and
two transactions dialing the same lead at once leave the earlier dial first.

The pipeline board from each lead's latest stage move: the same board as grouping the
dispositions (`kept=False`) after the apply's dispositions (inserted, then their stage set),
corrections, a move re-dated, moved to another lead or deleted, and a lead inserted after its
dispositions, for the agency, one campaign and one owner."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from crm_bridge import reports

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = date(2026, 11, 12)
START = datetime(2026, 11, 12, 15, tzinfo=UTC)


async def _lead(conn: asyncpg.Connection, lead_id: str, created: datetime, *, imported: bool = False) -> None:
    await conn.execute("INSERT INTO leads (lead_id, phones, created_at, import_id) VALUES ($1, '{}', $2, $3)",
                       lead_id, created, "imp-1" if imported else None)


async def _call(conn: asyncpg.Connection, call_id: str, lead_id: str, at: datetime, *, agent: str | None = None,
                campaign: str | None = None, direction: str = "outbound") -> None:
    await conn.execute(
        "INSERT INTO calls (call_id, version, direction, lead_id, agent_id, campaign_id, requested_at) "
        "VALUES ($1, 1, $2, $3, $4, $5, $6)", call_id, direction, lead_id, agent, campaign, at)


async def _kept(conn: asyncpg.Connection, prefix: str) -> dict[str, tuple[Any, ...]]:
    rows = await conn.fetch("SELECT lead_id, first_dial_at, first_dial_agent_id, first_dial_campaign_id FROM leads "
                            "WHERE lead_id LIKE $1 || '%'", prefix)
    return {row["lead_id"]: (row[1], row[2], row[3]) for row in rows}


async def _recomputed(conn: asyncpg.Connection, prefix: str) -> dict[str, tuple[Any, ...]]:
    """Each lead's first dial recomputed in Python from every call row (earliest at or after
    the lead's creation, equal times by call id)."""
    leads = await conn.fetch("SELECT lead_id, created_at FROM leads WHERE lead_id LIKE $1 || '%'", prefix)
    calls = await conn.fetch("SELECT call_id, lead_id, requested_at, agent_id, campaign_id FROM calls "
                             "WHERE direction = 'outbound' AND lead_id LIKE $1 || '%'", prefix)
    out: dict[str, tuple[Any, ...]] = {}
    for lead in leads:
        dials = sorted((call for call in calls if call["lead_id"] == lead["lead_id"]
                        and call["requested_at"] >= lead["created_at"]),
                       key=lambda call: (call["requested_at"], call["call_id"]))
        first = dials[0] if dials else None
        out[lead["lead_id"]] = ((first["requested_at"], first["agent_id"], first["campaign_id"]) if first
                                else (None, None, None))
    return out


async def _reports(conn: asyncpg.Connection, *, rollups: bool, agents: list[str],
                   campaigns: list[str]) -> list[Any]:
    period = reports.period_of("range", "America/Chicago", NOW, first=DAY - timedelta(days=1),
                               last=DAY + timedelta(days=1))
    out: list[Any] = []
    for group in reports.GroupBy:
        out.append([row.as_dict() for row in await reports.kpis(conn, period, group, now=NOW, rollups=rollups)])
    for scope in [*(reports.Scope(agent_id=agent) for agent in agents),
                  *(reports.Scope(campaign_id=campaign) for campaign in campaigns)]:
        rows = await reports.kpis(conn, period, reports.GroupBy.AGENCY, scope, now=NOW, rollups=rollups)
        out.append([row.as_dict() for row in rows])
    return out


async def _assert_same_both_ways(conn: asyncpg.Connection, prefix: str, agents: list[str],
                                 campaigns: list[str]) -> None:
    assert await _kept(conn, prefix) == await _recomputed(conn, prefix)
    kept = await _reports(conn, rollups=True, agents=agents, campaigns=campaigns)
    assert kept == await _reports(conn, rollups=False, agents=agents, campaigns=campaigns)


async def test_first_dial_is_kept_exactly(reports_dsn: str) -> None:
    prefix = f"fd-{uuid.uuid4().hex[:6]}"
    agents = [f"{prefix}-agent-{n}" for n in range(2)]
    campaigns = [f"{prefix}-cmp-{n}" for n in range(2)]
    minute = timedelta(minutes=1)
    conn = await asyncpg.connect(reports_dsn)
    try:
        never, skew, several, late_row, moved, imported = (f"{prefix}-{name}" for name in (
            "never", "skew", "several", "late-row", "moved", "imported"))
        for lead in (never, skew, several, moved):
            await _lead(conn, lead, START)
        await _lead(conn, imported, START, imported=True)
        # A dial stamped before the lead's creation does not count; the next one does.
        await _call(conn, f"{prefix}-c-skew-0", skew, START - 2 * minute, agent=agents[0], campaign=campaigns[0])
        await _call(conn, f"{prefix}-c-skew-1", skew, START + 9 * minute, agent=agents[1], campaign=campaigns[1])
        # Several dials, inserted latest first, two at the same instant (the smaller call id wins),
        # and an inbound call before them all (not a dial).
        await _call(conn, f"{prefix}-c-sev-9", several, START + 30 * minute, agent=agents[0], campaign=campaigns[0])
        await _call(conn, f"{prefix}-c-sev-b", several, START + 4 * minute, agent=agents[1], campaign=campaigns[1])
        await _call(conn, f"{prefix}-c-sev-a", several, START + 4 * minute, campaign=campaigns[0])
        await _call(conn, f"{prefix}-c-sev-in", several, START + minute, agent=agents[0], direction="inbound")
        # Calls that arrive before their lead's row (plain columns, no foreign key).
        await _call(conn, f"{prefix}-c-late", late_row, START + 3 * minute, agent=agents[0], campaign=campaigns[1])
        await _lead(conn, late_row, START)
        await _call(conn, f"{prefix}-c-moved", moved, START + 2 * minute, campaign=campaigns[0])
        await _call(conn, f"{prefix}-c-imp", imported, START + minute, campaign=campaigns[0])
        kept = await _kept(conn, prefix)
        assert kept[never] == (None, None, None)
        assert kept[skew] == (START + 9 * minute, agents[1], campaigns[1])
        assert kept[several] == (START + 4 * minute, None, campaigns[0])
        assert kept[late_row] == (START + 3 * minute, agents[0], campaigns[1])
        await _assert_same_both_ways(conn, prefix, agents, campaigns)
        agency = (await reports.kpis(conn, reports.period_of("range", "America/Chicago", NOW, first=DAY),
                                     reports.GroupBy.AGENCY, now=NOW))[0]
        assert (agency.new_leads, agency.leads_dialed) == (5, 4)  # the imported lead is not a new lead

        # A later snapshot names the first dial's agent; the apply's other snapshots change nothing.
        await conn.execute("UPDATE calls SET agent_id = $2, version = 2 WHERE call_id = $1", f"{prefix}-c-sev-a",
                           agents[1])
        await conn.execute("UPDATE calls SET version = 3, ended_at = requested_at + interval '1 minute' "
                           "WHERE call_id LIKE $1 || '%'", prefix)
        assert (await _kept(conn, prefix))[several] == (START + 4 * minute, agents[1], campaigns[0])
        await _assert_same_both_ways(conn, prefix, agents, campaigns)
        # A call moved to another lead (both leads move), one turned inbound, the first one deleted,
        # a lead re-dated after its first dial (which then stops counting).
        await conn.execute("UPDATE calls SET lead_id = $2 WHERE call_id = $1", f"{prefix}-c-moved", never)
        await conn.execute("UPDATE calls SET direction = 'inbound' WHERE call_id = $1", f"{prefix}-c-skew-1")
        await conn.execute("DELETE FROM calls WHERE call_id = $1", f"{prefix}-c-sev-a")
        await conn.execute("UPDATE leads SET created_at = created_at + interval '5 minutes' WHERE lead_id = $1",
                           late_row)
        kept = await _kept(conn, prefix)
        assert kept[never] == (START + 2 * minute, None, campaigns[0]) and kept[moved] == (None, None, None)
        assert kept[skew] == (None, None, None)
        assert kept[several] == (START + 4 * minute, agents[1], campaigns[1])
        assert kept[late_row] == (None, None, None)
        await _assert_same_both_ways(conn, prefix, agents, campaigns)
    finally:
        await conn.close()


async def _race(lead: str, holder: asyncpg.Connection, held_at: datetime, waiter: asyncpg.Connection,
                waits_at: datetime) -> None:
    """`holder` dials `lead` (at `held_at`) in an open transaction; `waiter` dials it (at
    `waits_at`) meanwhile, waits for the lead row, and commits after `holder`."""
    holding = holder.transaction()
    await holding.start()
    await _call(holder, f"{lead}-held", lead, held_at)
    waiting = waiter.transaction()
    await waiting.start()
    blocked = asyncio.create_task(_call(waiter, f"{lead}-waited", lead, waits_at))
    await asyncio.sleep(0.3)
    assert not blocked.done()  # waits for the lead row the other transaction locked
    await holding.commit()
    await blocked
    await waiting.commit()


async def test_concurrent_dials_of_one_lead_leave_the_earlier_first(reports_dsn: str) -> None:
    """The transaction that commits second recomputes after waiting for the lead: it sees the
    other's dial, whichever of the two is earlier."""
    prefix = f"fdc-{uuid.uuid4().hex[:6]}"
    first = await asyncpg.connect(reports_dsn)
    second = await asyncpg.connect(reports_dsn)
    early, late = START + timedelta(minutes=5), START + timedelta(minutes=10)
    try:
        for order, (one, other) in enumerate(((first, second), (second, first))):
            for held_at, waits_at in ((late, early), (early, late)):
                lead = f"{prefix}-{order}-{held_at.minute}"
                await _lead(first, lead, START)
                await _race(lead, one, held_at, other, waits_at)
                assert (await _kept(first, lead))[lead][0] == early
        assert await _kept(first, prefix) == await _recomputed(first, prefix)
    finally:
        await first.close()
        await second.close()


async def _boards(conn: asyncpg.Connection, *, kept: bool, campaign: str, owner: str) -> list[Any]:
    return [await reports.pipeline(conn, NOW, per_stage=3, kept=kept),
            await reports.pipeline(conn, NOW, campaign_id=campaign, kept=kept),
            await reports.pipeline(conn, NOW, agent_id=owner, per_stage=2, kept=kept)]


async def test_board_from_kept_stage_moves_equals_the_dispositions(reports_dsn: str) -> None:
    prefix = f"bd-{uuid.uuid4().hex[:6]}"
    campaign, owner = f"{prefix}-cmp", f"{prefix}-owner"
    conn = await asyncpg.connect(reports_dsn)

    async def dispose(disposition_id: str, lead_id: str, at: datetime, before: str | None, after: str | None) -> None:
        # As the apply does: the row first, its stage move set once the lead's stage is decided.
        await conn.execute("INSERT INTO dispositions (disposition_id, lead_id, code, disposed_at) "
                           "VALUES ($1, $2, 'contacted', $3)", disposition_id, lead_id, at)
        await conn.execute("UPDATE dispositions SET stage_before = $2, stage_after = $3 WHERE disposition_id = $1",
                           disposition_id, before, after)

    async def same() -> None:
        moved = await conn.fetch(
            "SELECT l.lead_id, l.stage_moved_at, (SELECT max(disposed_at) FROM dispositions d WHERE "
            "d.lead_id = l.lead_id AND d.stage_after IS DISTINCT FROM d.stage_before) AS expected "
            "FROM leads l WHERE l.lead_id LIKE $1 || '%'", prefix)
        assert [(row["lead_id"], row["stage_moved_at"]) for row in moved] == [
            (row["lead_id"], row["expected"]) for row in moved]
        assert await _boards(conn, kept=True, campaign=campaign, owner=owner) == await _boards(
            conn, kept=False, campaign=campaign, owner=owner)

    try:
        leads = [f"{prefix}-lead-{n}" for n in range(8)]
        for n, lead in enumerate(leads[:7]):
            await conn.execute(
                "INSERT INTO leads (lead_id, first_name, phones, pipeline_stage, owner_agent_id, created_at) "
                "VALUES ($1, 'Pat', '{}', $2, $3, $4)", lead, ["new_lead", "contacted", "appt_set"][n % 3],
                owner if n % 2 else None, START + timedelta(minutes=n))
            if n % 2 == 0:
                await conn.execute("INSERT INTO campaign_leads (membership_id, campaign_id, lead_id) "
                                   "VALUES ($1, $2, $3)", f"{campaign}:{lead}", campaign, lead)
        for n, lead in enumerate(leads[1:6], start=1):
            await dispose(f"{prefix}-d{n}-a", lead, START + timedelta(hours=n), "new_lead", "contacted")
            # A disposition that moved nothing does not count, even when later.
            await dispose(f"{prefix}-d{n}-b", lead, START + timedelta(hours=n + 5), "contacted", "contacted")
        await dispose(f"{prefix}-d2-c", leads[2], START + timedelta(hours=9), "contacted", "appt_set")
        # Dispositions of a lead whose row comes later.
        await dispose(f"{prefix}-d7-a", leads[7], START + timedelta(hours=3), "new_lead", "contacted")
        await conn.execute("INSERT INTO leads (lead_id, phones, pipeline_stage, created_at) "
                           "VALUES ($1, '{}', 'contacted', $2)", leads[7], START)
        assert (await conn.fetchval("SELECT stage_moved_at FROM leads WHERE lead_id = $1", leads[7])
                == START + timedelta(hours=3))
        await same()
        await conn.execute("UPDATE dispositions SET disposed_at = disposed_at + interval '20 hours' "
                           "WHERE disposition_id = $1", f"{prefix}-d1-a")
        await conn.execute("UPDATE dispositions SET lead_id = $2 WHERE disposition_id = $1", f"{prefix}-d3-a",
                           leads[0])
        await conn.execute("DELETE FROM dispositions WHERE disposition_id = $1", f"{prefix}-d2-c")
        await conn.execute("UPDATE dispositions SET stage_after = stage_before WHERE disposition_id = $1",
                           f"{prefix}-d4-a")
        assert await conn.fetchval("SELECT stage_moved_at FROM leads WHERE lead_id = $1", leads[4]) is None
        await same()
    finally:
        await conn.close()
