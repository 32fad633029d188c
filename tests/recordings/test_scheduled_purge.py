"""The retention purge `dialer serve` runs on a schedule, and the archive's figures in /metrics
(the last verification, the purge): real files and real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from dialer.metrics import Metrics
from dialer.runtime.retention import RetentionPurge, purger_name
from dialer.serve import _collect_archive
from recordings.lifecycle import set_legal_hold, verify
from tests.recordings.test_lifecycle import RECORDED, Archive, archive, conn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
__all__ = ["archive", "conn"]  # the fixtures, shared with test_lifecycle

AFTER_FIVE_YEARS = RECORDED.replace(year=2031) + timedelta(days=1)


async def test_the_scheduled_purge_takes_what_is_due_and_never_what_is_held(
        archive: Archive, conn: asyncpg.Connection, pg_dsn: str) -> None:
    expired = await archive.add("sched-expired")  # life insurance: 5 years
    held = await archive.add("sched-held")
    young = await archive.add("sched-young", line="medicare_advantage")  # 10 years
    await set_legal_hold(conn, held.recording_id, held=True, by="counsel@agency", reason="Doe v. Agency",
                         now=RECORDED + timedelta(days=3))
    job = RetentionPurge(pg_dsn, archive.storage.root, every_seconds=3600.0, clock=lambda: AFTER_FIVE_YEARS)

    purged = await job.run_once()
    ours = [outcome.recording_id for outcome in purged if outcome.recording_id.endswith(archive.suffix)]
    assert ours == [expired.recording_id]
    assert not expired.path.exists() and archive.opens(held) and archive.opens(young)
    row = await conn.fetchrow("SELECT purged_at, purged_by FROM recordings WHERE recording_id = $1",
                              expired.recording_id)
    assert row["purged_at"] == AFTER_FIVE_YEARS and row["purged_by"] == purger_name()
    (event,) = await conn.fetch("SELECT actor FROM recording_events WHERE recording_id = $1 AND action = 'purged'",
                                expired.recording_id)
    assert event["actor"] == purger_name()
    assert job.purged_total == len(purged) and job.last_run_at is not None
    # The next run finds nothing more of ours: the held one waits for its release.
    again = await job.run_once()
    assert not [o for o in again if o.recording_id.endswith(archive.suffix)]

    # /metrics: the purge, and the last verification (which sees the purged file as gone on purpose).
    report = await verify(conn, archive.reader())
    metrics = Metrics()
    _collect_archive(metrics, job)
    gauge = metrics.gauge
    assert gauge("dialer_recordings_purged", "").value() == job.purged_total
    assert gauge("dialer_recordings_last_purge_timestamp_seconds", "").value() == job.last_run_at
    finished = gauge("dialer_recordings_last_verification_timestamp_seconds", "").value()
    assert report.finished_at is not None and abs(finished - report.finished_at.timestamp()) < 1
    assert gauge("dialer_recordings_last_verification_checked", "").value() == report.figures()["checked"]
    problems = gauge("dialer_recordings_last_verification_problems", "")
    assert problems.value(kind="damaged") == 0 and problems.value(kind="orphaned") == report.count("orphaned")
    assert "dialer_recordings_last_verification_problems{kind=\"missing\"}" in metrics.render()


async def test_the_schedule_is_off_at_zero_hours(tmp_path: Path, pg_dsn: str) -> None:
    job = RetentionPurge(pg_dsn, tmp_path, every_seconds=0.0)
    async with asyncio.timeout(1):
        await job.run(first_delay=3600)  # returns at once: no first run is even waited for
    assert job.last_run_at is None
