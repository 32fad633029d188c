"""The hourly roll-ups (migration 0019): the reports read from them give exactly what the raw
rows give, whatever the zone (whole-hour and half-hour offsets), the grouping and the scope;
they stay exact when the outbox's apply writes snapshots out of order, replays entries, or a
correction moves a call's first disposition; the migration's back-fill builds them from rows
already there."""

from __future__ import annotations

import asyncio
import random
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from compliance_rules.telemarketing import LIVE_ANSWER_AMD_RESULTS
from crm_bridge import migrate, reports
from crm_bridge.apply import apply_record
from crm_bridge.dispositions import DispositionCode, contact_codes
from crm_bridge.kinds import RecordKind
from crm_bridge.records import validate
from dialer.campaign.agent import AgentState
from tests.reports.seeding import FUNNEL, build_day, recount, write_day
from tests.support.databases import ADMIN_DSN, dsn_for

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = date(2026, 11, 18)
# Chicago (whole hours: all from roll-ups), Kolkata (+5:30) and St. John's (-3:30): every
# bucket edge falls inside an hour, so the edges come from raw rows.
ZONES = ("America/Chicago", "Asia/Kolkata", "America/St_Johns")


async def _everything(conn: asyncpg.Connection, period: reports.Period, *, rollups: bool) -> dict[str, Any]:
    """Every report over `period` in every grouping and a few scopes, as plain dicts."""
    out: dict[str, Any] = {}
    for group in reports.GroupBy:
        rows = await reports.kpis(conn, period, group, now=NOW, rollups=rollups)
        out[group.value] = [row.as_dict() for row in rows]
        for row in rows:
            if group is not reports.GroupBy.AGENCY and row.key:
                scope = (reports.Scope(agent_id=row.key) if group is reports.GroupBy.AGENT
                         else reports.Scope(campaign_id=row.key))
                scoped = await reports.kpis(conn, period, reports.GroupBy.AGENCY, scope, now=NOW, rollups=rollups)
                out[f"{group.value}:{row.key}"] = [found.as_dict() for found in scoped]
    out["series"] = await reports.series(conn, period, rollups=rollups)
    # The pipeline board from the stage moves kept on the leads (migration 0020) or grouped raw.
    out["board"] = await reports.pipeline(conn, NOW, per_stage=7, kept=rollups)
    for scope in out["agent"][:2]:
        out[f"board:{scope['key']}"] = await reports.pipeline(conn, NOW, agent_id=scope["key"] or None, kept=rollups)
    return out


def _periods(zone: str) -> list[reports.Period]:
    return [reports.period_of("range", zone, NOW, first=DAY), reports.period_of("week", zone, NOW),
            reports.period_of("range", zone, NOW, first=DAY - timedelta(days=1), last=DAY + timedelta(days=1)),
            reports.period_of("today", zone, datetime(2026, 11, 18, 22, tzinfo=UTC))]


async def test_sql_definitions_are_the_python_ones(reports_dsn: str) -> None:
    conn = await asyncpg.connect(reports_dsn)
    try:
        for code in DispositionCode:
            kpis = await conn.fetchval("SELECT report_disposition_kpis($1)", code.value)
            expected = (["contacts"] if code in contact_codes() else []) + (
                [FUNNEL[code.value]] if code.value in FUNNEL else [])
            assert kpis == expected, code
        for amd in ("HUMAN", "NOTSURE", "MACHINE", "HANGUP", None):
            assert await conn.fetchval("SELECT report_live_answer($1)", amd) is (amd in LIVE_ANSWER_AMD_RESULTS)
        for state in AgentState:
            kind = await conn.fetchval("SELECT report_state_kind($1)", state.value)
            assert kind == ("busy" if state.value in reports.BUSY_STATES else "available"
                            if state.value in reports.AVAILABLE_STATES else "paused" if state is AgentState.PAUSED
                            else None), state
        cap = await conn.fetchval("SELECT extract(epoch FROM report_state_cap())")
        assert float(cap) == reports.OPEN_STATE_CAP_SECONDS
    finally:
        await conn.close()


async def test_rollups_equal_raw_rows_in_every_zone(reports_dsn: str) -> None:
    day = build_day(reports.period_of("range", "America/Chicago", NOW, first=DAY).start, seed=11,
                    prefix=f"rollup-{uuid.uuid4().hex[:6]}")
    conn = await asyncpg.connect(reports_dsn)
    try:
        await write_day(conn, day)
        for zone in ZONES:
            for period in _periods(zone):
                assert await _everything(conn, period, rollups=True) == await _everything(conn, period, rollups=False)
        # And both are what a recount in Python of the seeded rows gives (a half-hour zone).
        kolkata = reports.period_of("range", "Asia/Kolkata", NOW, first=DAY)
        rows = await reports.kpis(conn, kolkata, reports.GroupBy.AGENT, now=NOW)
        expected = recount(day, kolkata.start, kolkata.end, "agent", NOW)
        got = {row.key: row.as_dict() for row in rows}
        assert set(got) == set(expected)
        for key, want in expected.items():
            for name in ("dials", "people", "abandoned", "handled", "contacts", "appts_set", "issued"):
                assert got[key][name] == int(want.get(name, 0)), (key, name)
            assert got[key]["talk_seconds"] == pytest.approx(want.get("talk_seconds", 0.0), abs=0.01)
    finally:
        await conn.close()


async def _apply(conn: asyncpg.Connection, kind: RecordKind, record: dict[str, Any]) -> None:
    async with conn.transaction():
        await apply_record(conn, kind, validate(kind.value, record))


def _snapshots(call_id: str, at: datetime, rng: random.Random, agents: list[str], campaign: str) -> list[dict[str, Any]]:
    """A call's snapshots as the controller writes them: requested, answered, bridged, ended
    (the later ones may name another agent, as a transfer would)."""
    base: dict[str, Any] = {"call_id": call_id, "direction": "outbound", "lead_id": f"{call_id}-lead",
                            "campaign_id": campaign, "requested_at": at.isoformat()}
    answered = {**base, "lead_answered_at": (at + timedelta(seconds=5)).isoformat(),
                "amd_result": rng.choice(["HUMAN", "NOTSURE", "MACHINE"])}
    person = answered["amd_result"] != "MACHINE"
    steps = [{**base, "version": 1}, {**answered, "version": 2}]
    if person and rng.random() < 0.1:
        steps.append({**answered, "version": 3, "abandoned": True})
    elif person:
        agent = rng.choice(agents)
        bridged = {**answered, "agent_id": agent, "bridged_at": (at + timedelta(seconds=6)).isoformat()}
        steps.append({**bridged, "version": 3})
        steps.append({**bridged, "version": 4, "agent_id": rng.choice(agents), "talk_seconds": rng.uniform(5, 300),
                      "ended_at": (at + timedelta(seconds=400)).isoformat()})
    return steps


async def test_apply_keeps_rollups_exact_under_replays_and_corrections(reports_dsn: str) -> None:
    rng = random.Random(5)
    prefix = f"replay-{uuid.uuid4().hex[:6]}"
    agents = [f"{prefix}-agent-{n}" for n in range(3)]
    campaigns = [f"{prefix}-cmp-{n}" for n in range(2)]
    start = datetime(2026, 11, 18, 14, tzinfo=UTC)
    items: list[tuple[RecordKind, dict[str, Any]]] = []
    for n in range(60):
        call_id = f"{prefix}-call-{n}"
        at = start + timedelta(minutes=rng.uniform(0, 300))
        steps = _snapshots(call_id, at, rng, agents, rng.choice(campaigns))
        items += [(RecordKind.CALL, step) for step in steps]
        if "bridged_at" in steps[-1]:
            code = rng.choice(["contacted", "appointment_set", "sale", "no_answer", "policy_issued"])
            first = {"disposition_id": f"{call_id}-d1", "call_id": call_id, "lead_id": f"{call_id}-lead",
                     "agent_id": steps[-1]["agent_id"], "campaign_id": steps[-1]["campaign_id"], "code": code,
                     "disposed_at": (at + timedelta(minutes=rng.uniform(7, 90))).isoformat()}
            items.append((RecordKind.DISPOSITION, first))
            if rng.random() < 0.5:
                # A correction: another code, by another agent, sometimes dated before the first
                # (it arrives later but becomes the call's first: the hour and agent move).
                shift = timedelta(minutes=rng.choice([-65, -3, 2, 70]))
                items.append((RecordKind.DISPOSITION, {
                    **first, "disposition_id": f"{call_id}-d2", "agent_id": rng.choice(agents),
                    "code": rng.choice(["contacted", "appointment_set", "appointment_held"]),
                    "disposed_at": (datetime.fromisoformat(first["disposed_at"]) + shift).isoformat()}))
    items.append((RecordKind.DISPOSITION, {"disposition_id": f"{prefix}-no-call", "call_id": None, "lead_id": None,
                                           "agent_id": agents[0], "campaign_id": campaigns[0], "code": "sale",
                                           "disposed_at": start.isoformat()}))
    # Two agents' sessions: states whose ends arrive out of order (a state's end is the session's
    # next change), one left open (it lasts until "now", read raw).
    for agent_index, agent in enumerate(agents[:2]):
        at = start + timedelta(minutes=7 * agent_index)
        for version in range(1, 40):
            items.append((RecordKind.AGENT_STATE, {
                "change_id": f"{agent}:s:{version}", "agent_id": agent,
                "state": ["ready", "reserved", "on_call", "wrap_up", "paused", "logging_in"][version % 6],
                "since": at.isoformat(), "version": version, "session_id": f"{agent}-session",
                "campaign_ids": campaigns[: 1 + agent_index]}))
            at += timedelta(minutes=rng.uniform(1, 40))
    # Out of order across retries, and every entry replayed (as after a crash before the
    # outbox marked it done): a snapshot older than the row and a known disposition change nothing.
    rng.shuffle(items)
    replays = rng.sample(items, len(items) // 2)
    conn = await asyncpg.connect(reports_dsn)
    try:
        for kind, record in [*items, *replays, *items[:10]]:
            await _apply(conn, kind, record)
        period = reports.period_of("range", "America/Chicago", NOW, first=DAY)
        for zone in ZONES:
            shifted = reports.period_of("range", zone, NOW, first=DAY)
            assert await _everything(conn, shifted, rollups=True) == await _everything(conn, shifted, rollups=False)
        # An admin's SQL (not the apply) is followed as well: a disposition re-dated, a call removed.
        await conn.execute("UPDATE dispositions SET disposed_at = disposed_at - interval '2 hours' "
                           "WHERE disposition_id = $1", f"{prefix}-call-3-d1")
        await conn.execute("DELETE FROM calls WHERE call_id = ANY($1::text[])", [f"{prefix}-call-{n}" for n in range(5)])
        await conn.execute("DELETE FROM agent_state_changes WHERE change_id = $1", f"{agents[0]}:s:7")
        assert await _everything(conn, period, rollups=True) == await _everything(conn, period, rollups=False)
        scoped = reports.Scope(agent_id=agents[1])
        agent = await reports.kpis(conn, period, reports.GroupBy.AGENT, scoped, now=NOW)
        assert agent[0].handled > 0 and agent[0].contacts > 0  # the seeding did reach the figures compared
        assert agent[0].busy_seconds > 0 and agent[0].available_seconds > 0 and agent[0].paused_seconds > 0
        await _assert_tables_match_a_rebuild(conn)
    finally:
        await conn.close()


async def _assert_tables_match_a_rebuild(conn: asyncpg.Connection) -> None:
    """The roll-up tables (zero rows left out) are what grouping every raw row again gives."""
    kept = await conn.fetch(
        "SELECT hour, agent_id, campaign_id, calls, dials, answered, people, connected, abandoned, inbound, handled, "
        "talk_seconds::float8 AS talk FROM call_rollups WHERE calls <> 0 OR dials <> 0 OR talk_seconds <> 0 "
        "ORDER BY 1, 2, 3")
    rebuilt = await conn.fetch(
        "SELECT date_trunc('hour', requested_at, 'UTC') AS hour, agent_id, campaign_id, count(*) AS calls, "
        "count(*) FILTER (WHERE direction = 'outbound') AS dials, "
        "count(*) FILTER (WHERE direction = 'outbound' AND lead_answered_at IS NOT NULL) AS answered, "
        "count(*) FILTER (WHERE direction = 'outbound' AND amd_result IN ('HUMAN', 'NOTSURE')) AS people, "
        "count(*) FILTER (WHERE bridged_at IS NOT NULL) AS connected, "
        "count(*) FILTER (WHERE abandoned AND amd_result IN ('HUMAN', 'NOTSURE')) AS abandoned, "
        "count(*) FILTER (WHERE direction = 'inbound') AS inbound, "
        "count(*) FILTER (WHERE bridged_at IS NOT NULL AND agent_id IS NOT NULL) AS handled, "
        "coalesce(sum(talk_seconds::numeric) FILTER (WHERE bridged_at IS NOT NULL AND agent_id IS NOT NULL), 0)"
        "::float8 AS talk FROM calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    assert [dict(row) for row in kept] == [dict(row) for row in rebuilt]
    kept = await conn.fetch(
        "SELECT hour, agent_id, campaign_id, dispositions, contacts, appts_set, appts_held, app_pending, issued "
        "FROM disposition_rollups WHERE dispositions <> 0 OR contacts <> 0 OR appts_set <> 0 OR appts_held <> 0 "
        "OR app_pending <> 0 OR issued <> 0 ORDER BY 1, 2, 3")
    # Firsts computed in Python: each call's earliest disposition per KPI.
    rows = await conn.fetch("SELECT disposition_id, call_id, agent_id, campaign_id, code, disposed_at, "
                            "date_trunc('hour', disposed_at, 'UTC') AS hour FROM dispositions "
                            "ORDER BY disposed_at, disposition_id")
    buckets: dict[tuple[Any, ...], dict[str, int]] = {}
    firsts: set[tuple[str, str]] = set()
    names = ("dispositions", "contacts", "appts_set", "appts_held", "app_pending", "issued")
    for row in rows:
        bucket = buckets.setdefault((row["hour"], row["agent_id"], row["campaign_id"]), dict.fromkeys(names, 0))
        bucket["dispositions"] += 1
        code = row["code"]
        for name in (["contacts"] if DispositionCode(code) in contact_codes() else []) + (
                [FUNNEL[code]] if code in FUNNEL else []):
            call = row["call_id"] or row["disposition_id"]
            if (call, name) not in firsts:
                firsts.add((call, name))
                bucket[name] += 1
    await _assert_states_match_a_rebuild(conn)
    expected = [{"hour": hour, "agent_id": agent, "campaign_id": campaign, **counts}
                for (hour, agent, campaign), counts in buckets.items()]
    expected.sort(key=lambda row: (row["hour"], row["agent_id"] or "", row["campaign_id"] or ""))
    got = sorted((dict(row) for row in kept), key=lambda row: (row["hour"], row["agent_id"] or "",
                                                             row["campaign_id"] or ""))
    assert got == expected


async def _assert_states_match_a_rebuild(conn: asyncpg.Connection) -> None:
    """agent_state_rollups is every ended state cut into its UTC hours, recomputed in Python."""
    kept = await conn.fetch(
        "SELECT hour, agent_id, campaign_ids, seconds, busy_seconds, available_seconds, paused_seconds, wrap_seconds "
        "FROM agent_state_rollups WHERE seconds <> 0 ORDER BY 1, 2, 3")
    buckets: dict[tuple[Any, ...], list[Any]] = {}
    for row in await conn.fetch("SELECT agent_id, campaign_ids, state, since, ended_at FROM agent_state_changes "
                                "WHERE ended_at IS NOT NULL"):
        until = min(row["ended_at"], row["since"] + timedelta(seconds=reports.OPEN_STATE_CAP_SECONDS))
        hour = row["since"].replace(minute=0, second=0, microsecond=0)
        while hour < until:
            piece = Decimal(str((min(until, hour + timedelta(hours=1)) - max(row["since"], hour)).total_seconds()))
            if piece > 0:
                bucket = buckets.setdefault((hour, row["agent_id"], tuple(row["campaign_ids"])), [Decimal(0)] * 5)
                kinds = [True, row["state"] in reports.BUSY_STATES, row["state"] in reports.AVAILABLE_STATES,
                         row["state"] == "paused", row["state"] == "wrap_up"]
                for index, counted in enumerate(kinds):
                    bucket[index] += piece if counted else 0
            hour += timedelta(hours=1)
    expected = sorted(((hour, agent, list(campaigns), *sums) for (hour, agent, campaigns), sums in buckets.items()),
                      key=lambda row: (row[0], row[1], row[2]))
    assert [tuple(row) for row in kept] == [tuple(row) for row in expected]


def test_migration_backfills_rows_already_there(tmp_path: Path) -> None:
    """A database with a day of rows before 0019: after it, the reports from roll-ups equal raw."""
    name = f"dialer_test_backfill_{uuid.uuid4().hex[:10]}"
    before = tmp_path / "migrations"
    before.mkdir()
    for path in migrate.MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0019":
            shutil.copy(path, before / path.name)
    period = reports.period_of("range", "America/Chicago", NOW, first=DAY)
    day = build_day(period.start, seed=3, calls=200, prefix=f"backfill-{uuid.uuid4().hex[:6]}")

    async def run() -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            conn = await asyncpg.connect(dsn_for(name))
            try:
                await migrate.migrate(conn, before)
                await write_day(conn, day)
                assert [m.version for m in await migrate.migrate(conn)] == [
                    int(path.name[:4]) for path in sorted(migrate.MIGRATIONS_DIR.glob("*.sql")) if path.name >= "0019"]
                assert await conn.fetchval("SELECT sum(calls) FROM call_rollups") == len(day.calls)
                assert await _everything(conn, period, rollups=True) == await _everything(conn, period, rollups=False)
                await _assert_tables_match_a_rebuild(conn)
            finally:
                await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

    asyncio.run(run())
