"""The outbox against the real PostgreSQL: delivery once, outages, restarts, refused records."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from crm_bridge.backoff import Backoff
from crm_bridge.outbox import Outbox, OutboxError
from crm_bridge.records import InvalidRecord
from tests.crm import factories
from tests.support.fault_proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAST = Backoff(initial=0.02, maximum=0.2)
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"


def _outbox(state_dir: Path, dsn: str, **options: Any) -> Outbox:
    options.setdefault("backoff", FAST)
    options.setdefault("connect_timeout", 2.0)
    options.setdefault("poll_interval", 0.2)
    return Outbox(state_dir, dsn, **options)


async def _count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def _eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_bad_records_are_refused_at_put_and_nothing_is_written(tmp_path: Path) -> None:
    async with _outbox(tmp_path, UNREACHABLE) as outbox:
        record = factories.call()
        del record["call_id"]
        with pytest.raises(InvalidRecord, match=r"call\.call_id: is required"):
            await outbox.put("call", record)
        with pytest.raises(InvalidRecord):
            await outbox.put_many([("opt_out", factories.opt_out()), ("opt_out", factories.opt_out(phone="12"))])
        with pytest.raises(InvalidRecord, match="unknown record kind"):
            await outbox.put("sms", {})
        assert outbox.stats().pending == 0
    with sqlite3.connect(tmp_path / "outbox-crm.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


async def test_put_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="call start"):
        await _outbox(tmp_path, UNREACHABLE).put("opt_out", factories.opt_out())


async def test_one_process_per_state_directory(tmp_path: Path) -> None:
    async with _outbox(tmp_path, UNREACHABLE):
        with pytest.raises(OutboxError, match="another process"):
            await _outbox(tmp_path, UNREACHABLE).start()


async def test_every_kind_is_delivered_once(tmp_path: Path, migrated_scratch_dsn: str) -> None:
    dsn = migrated_scratch_dsn
    call_id = str(uuid.uuid4())
    async with _outbox(tmp_path, dsn) as outbox:
        await outbox.put("agent_upsert", factories.agent())
        await outbox.put("campaign_upsert", factories.campaign())
        await outbox.put("lead_upsert", factories.lead())
        decision = factories.decision(allowed=True, reasons=[])
        await outbox.put("compliance_decision", decision)
        await outbox.put("call", factories.call(call_id, 1, compliance_decision_id=decision["decision_id"]))
        await outbox.put("recording", factories.recording(call_id))
        await outbox.put("call", factories.ended_call(call_id, 2))
        await outbox.put("disposition", factories.disposition("appointment_set", call_id=call_id))
        await outbox.put("opt_out", factories.opt_out(call_id=call_id))
        assert await outbox.flush(10)
        assert outbox.stats().delivered == 9
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM calls WHERE call_id = $1", call_id)
        assert row is not None
        assert row["version"] == 2 and row["outcome"] == "answered" and row["talk_seconds"] == 188.0
        assert row["recording_id"] is not None, "the recording stays linked after a later snapshot"
        assert str(row["compliance_decision_id"]) == decision["decision_id"]
        lead = await conn.fetchrow("SELECT pipeline_stage, phones FROM leads WHERE lead_id = 'lead-1'")
        assert lead is not None and lead["pipeline_stage"] == "appt_set" and lead["phones"] == ["+14045550123"]
        assert await conn.fetchval("SELECT count(*) FROM consent_records WHERE lead_id = 'lead-1'") == 1
        stage_move = await conn.fetchrow("SELECT stage_before, stage_after FROM dispositions")
        assert stage_move is not None and tuple(stage_move) == ("new_lead", "appt_set")
        audit = await conn.fetchrow("SELECT reasons, data_versions, allowed FROM compliance_decisions")
        assert audit is not None and audit["allowed"] is True and audit["reasons"] == "[]"
        campaign = await conn.fetchrow("SELECT dial_mode, window_start FROM campaigns")
        assert campaign is not None and campaign["dial_mode"] == "predictive"
        for table in ("agents", "opt_outs", "recordings"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1
    finally:
        await conn.close()


async def test_older_call_snapshot_never_overwrites_a_newer_one(tmp_path: Path, crm_dsn: str) -> None:
    call_id = str(uuid.uuid4())
    async with _outbox(tmp_path, crm_dsn) as outbox:
        await outbox.put("call", factories.ended_call(call_id, 5))
        await outbox.put("call", factories.call(call_id, 3))
        assert await outbox.flush(10)
    assert await _count(crm_dsn, "SELECT version FROM calls WHERE call_id = $1", call_id) == 5


async def test_disposition_never_moves_lead_backwards_and_dnc_is_lost(tmp_path: Path, crm_dsn: str) -> None:
    lead_id = f"lead-{uuid.uuid4().hex[:8]}"
    async with _outbox(tmp_path, crm_dsn) as outbox:
        await outbox.put("lead_upsert", factories.lead(lead_id, consents=[]))
        await outbox.put("disposition", factories.disposition("appointment_set", lead_id))
        await outbox.put("disposition", factories.disposition("no_answer", lead_id))
        await outbox.put("disposition", factories.disposition("contacted", lead_id))
        assert await outbox.flush(10)
        stage_sql = "SELECT pipeline_stage FROM leads WHERE lead_id = $1"
        conn = await asyncpg.connect(crm_dsn)
        try:
            assert await conn.fetchval(stage_sql, lead_id) == "appt_set"
            await outbox.put("disposition", factories.disposition("do_not_call", lead_id))
            assert await outbox.flush(10)
            assert await conn.fetchval(stage_sql, lead_id) == "lost"
        finally:
            await conn.close()


async def test_postgres_down_during_writes_then_back_every_row_once(
    tmp_path: Path, migrated_scratch_dsn: str
) -> None:
    dsn = migrated_scratch_dsn
    async with FaultProxy("127.0.0.1", 5432) as proxy:
        proxy.down()
        async with _outbox(tmp_path, proxy.rewrite_dsn(dsn), batch_size=7, prune_applied=False) as outbox:
            ids = [str(uuid.uuid4()) for _ in range(60)]
            for call_id in ids[:30]:
                await outbox.put("call", factories.call(call_id, 1))
            await _eventually(lambda: (outbox.stats().failures >= 2))
            assert await _count(dsn, "SELECT count(*) FROM calls") == 0
            assert outbox.stats().pending == 30
            proxy.restore()
            # More writes while delivery resumes, with the connection cut now and then.
            for index, call_id in enumerate(ids[30:]):
                await outbox.put("call", factories.call(call_id, 1))
                if index % 10 == 0:
                    proxy.cut()
                    await asyncio.sleep(0.01)
            assert await outbox.flush(20), outbox.stats()
            stats = outbox.stats()
    assert stats.pending == 0 and stats.delivered == 60 and stats.rejected == 0
    assert await _count(dsn, "SELECT count(*) FROM calls") == 60
    assert await _count(dsn, "SELECT count(DISTINCT call_id) FROM calls") == 60
    assert await _count(dsn, "SELECT count(*) FROM outbox_applied") == 60


async def test_a_stalled_server_is_given_up_on_and_retried(tmp_path: Path, migrated_scratch_dsn: str) -> None:
    async with FaultProxy("127.0.0.1", 5432) as proxy:
        proxy.stall()
        async with _outbox(
            tmp_path, proxy.rewrite_dsn(migrated_scratch_dsn), connect_timeout=0.3, command_timeout=0.5
        ) as outbox:
            await outbox.put("opt_out", factories.opt_out())
            await _eventually(lambda: (outbox.stats().failures >= 1))
            proxy.restore()
            assert await outbox.flush(10)
    assert await _count(migrated_scratch_dsn, "SELECT count(*) FROM opt_outs") == 1


async def test_restart_delivers_what_was_pending(tmp_path: Path, migrated_scratch_dsn: str) -> None:
    first = _outbox(tmp_path, UNREACHABLE)
    await first.start()
    for _ in range(20):
        await first.put("opt_out", factories.opt_out())
    assert await first.close(timeout=0.2) is False
    async with _outbox(tmp_path, migrated_scratch_dsn) as second:
        assert second.stats().pending == 20
        assert await second.flush(10)
    assert await _count(migrated_scratch_dsn, "SELECT count(*) FROM opt_outs") == 20


@pytest.mark.parametrize("prune_applied", [True, False])
async def test_crash_between_pg_commit_and_local_mark_does_not_duplicate(
    tmp_path: Path, migrated_scratch_dsn: str, prune_applied: bool
) -> None:
    """The batch commits in PostgreSQL, then marking it delivered locally fails once."""
    crashes: list[list[int]] = []

    async def crash_once(ids: Any) -> None:
        # Crash on the second batch, whose transaction also prunes the first batch's marks.
        if not crashes and min(ids) > 1:
            crashes.append(list(ids))
            raise RuntimeError("simulated crash after commit")

    lead_id = "lead-crash"
    async with _outbox(
        tmp_path, migrated_scratch_dsn, after_apply_hook=crash_once, prune_applied=prune_applied
    ) as outbox:
        await outbox.put("opt_out", factories.opt_out(phone="+14045550999"))
        assert await outbox.flush(10)
        await outbox.put_many(
            [
                ("lead_upsert", factories.lead(lead_id, consents=[])),
                ("disposition", factories.disposition("do_not_call", lead_id)),
                ("opt_out", factories.opt_out(lead_id=lead_id)),
            ]
        )
        assert await outbox.flush(10)
        assert outbox.stats().failures == 1
    assert crashes == [[2, 3, 4]]
    dsn = migrated_scratch_dsn
    assert await _count(dsn, "SELECT count(*) FROM opt_outs") == 2
    assert await _count(dsn, "SELECT count(*) FROM dispositions") == 1
    if not prune_applied:
        assert await _count(dsn, "SELECT count(*) FROM outbox_applied") == 4


async def test_record_refused_by_postgres_is_set_aside_not_blocking(
    tmp_path: Path, migrated_scratch_dsn: str
) -> None:
    dsn = migrated_scratch_dsn
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE opt_outs ADD CONSTRAINT test_poison CHECK (source <> 'poison')")
        async with _outbox(tmp_path, dsn, prune_applied=False) as outbox:
            await outbox.put("opt_out", factories.opt_out(source="crm_api"))
            await outbox.put("opt_out", factories.opt_out(source="poison"))
            await outbox.put("opt_out", factories.opt_out(source="sms_stop"))
            assert await outbox.flush(10)
            assert outbox.stats().rejected == 1
            assert await conn.fetchval("SELECT count(*) FROM opt_outs") == 2
            await conn.execute("ALTER TABLE opt_outs DROP CONSTRAINT test_poison")
            assert await outbox.requeue_rejected() == 1
            assert await outbox.flush(10)
            assert outbox.stats().rejected == 0
        assert await conn.fetchval("SELECT count(*) FROM opt_outs") == 3
        assert await conn.fetchval("SELECT count(*) FROM outbox_applied") == 3
    finally:
        await conn.close()


async def test_cli_shows_what_waits_in_the_outbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer import cli

    assert await asyncio.to_thread(cli.main, ["db", "outbox", "--state-dir", str(tmp_path)]) == 0
    assert "no outbox" in capsys.readouterr().out
    outbox = _outbox(tmp_path, UNREACHABLE)
    await outbox.start()
    await outbox.put("opt_out", factories.opt_out())
    await outbox.close(timeout=0.1)
    assert await asyncio.to_thread(cli.main, ["db", "outbox", "--state-dir", str(tmp_path)]) == 0
    assert "1 pending" in capsys.readouterr().out


async def test_applied_marks_are_pruned_once_delivered_locally(tmp_path: Path, migrated_scratch_dsn: str) -> None:
    async with _outbox(tmp_path, migrated_scratch_dsn, batch_size=10) as outbox:
        await outbox.put_many([("opt_out", factories.opt_out()) for _ in range(50)])
        assert await outbox.flush(10)
        await outbox.put("opt_out", factories.opt_out())
        assert await outbox.flush(10)
    assert await _count(migrated_scratch_dsn, "SELECT count(*) FROM opt_outs") == 51
    # Only the last batch's marks remain: they are pruned with the next batch.
    assert await _count(migrated_scratch_dsn, "SELECT count(*) FROM outbox_applied") == 1


async def test_the_outbox_keeps_its_phi_to_its_owner(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Outbox(state, UNREACHABLE, backoff=FAST) as outbox:
        await outbox.put("opt_out", factories.opt_out())
        files = [path for path in state.iterdir() if path.is_file()]
        assert files and all(path.stat().st_mode & 0o777 == 0o600 for path in files), files
    assert state.stat().st_mode & 0o777 == 0o700
