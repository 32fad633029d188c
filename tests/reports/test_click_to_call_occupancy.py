"""Occupancy covers agents who only click to call: the states their calls give them
(`dialer.click_to_call.presence`), written as the runtime writes them (`agent_state` records
through the outbox's apply), are what the reports read."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import asyncpg
import pytest

from crm_bridge import reports
from crm_bridge.apply import apply_record
from crm_bridge.kinds import RecordKind
from crm_bridge.records import validate
from dialer.campaign.agent import agent_state_record
from dialer.click_to_call.presence import ClickToCallPresence
from dialer.click_to_call.record import CallState

pytestmark = pytest.mark.timeout(60)


async def test_click_to_call_agent_has_occupancy(reports_dsn: str) -> None:
    agent = f"c2c-agent-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 11, 10, 15, tzinfo=UTC).timestamp()
    presence = ClickToCallPresence(wrap_up_seconds=30, idle_seconds=600)
    changes = []
    # Two calls 5 minutes apart: 10 s setting up, 60 s talking, wrap-up ended by the disposition
    # after 20 s (the first) or by its 30 s limit (the second); then idle until the session ends.
    for n, at in enumerate((start, start + 300)):
        call_id = f"{agent}-call-{n}"
        changes += presence.call_state(agent, call_id, CallState.REQUESTED, None, at)
        changes += presence.call_state(agent, call_id, CallState.BRIDGED, None, at + 10)
        changes += presence.call_state(agent, call_id, CallState.ENDED, None, at + 70)
        if n == 0:
            changes += presence.disposed(agent, call_id, at + 90)
    changes += presence.due(start + 10_000)
    conn = await asyncpg.connect(reports_dsn)
    try:
        for snapshot in [*changes, *changes[:3]]:  # replayed entries write nothing twice
            async with conn.transaction():
                await apply_record(conn, RecordKind.AGENT_STATE, validate("agent_state", agent_state_record(snapshot)))
        period = reports.period_of("range", "America/New_York", datetime(2026, 11, 20, tzinfo=UTC),
                                   first=date(2026, 11, 10))
        rows = await reports.kpis(conn, period, reports.GroupBy.AGENT, reports.Scope(agent_id=agent),
                                  now=datetime(2026, 11, 20, tzinfo=UTC))
    finally:
        await conn.close()
    kpi = rows[0]
    assert kpi.key == agent
    # Busy: 2 x (10 + 60) + 20 + 30 wrap-up; ready: 300 - 90 between the calls, 600 after the last.
    assert kpi.busy_seconds == pytest.approx(190.0) and kpi.wrap_seconds == pytest.approx(50.0)
    assert kpi.available_seconds == pytest.approx(210.0 + 600.0)
    assert kpi.rates["occupancy"] == pytest.approx(190.0 / 1000.0)
