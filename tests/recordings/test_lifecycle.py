"""Legal hold, purge, verification and KEK rotation against real files and real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from crm_bridge.migrate import migrate
from crm_bridge.outbox import Outbox
from recordings.archive import ArchivedRecording, seal_into_archive
from recordings.crypto import Keyring, RecordingCryptoError, RecordingKeysMissing
from recordings.lifecycle import (
    LifecycleError,
    last_verification,
    purge,
    record_rotation,
    rotate_keys,
    set_legal_hold,
    verify,
)
from recordings.reader import FileRef, RecordingReader
from recordings.retention import PurgeRefusal
from recordings.storage import LocalStorage
from recordings.transcode import PcmSource
from tests.recordings.conftest import tone, wav_bytes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RECORDED = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    await migrate(connection)
    try:
        yield connection
    finally:
        await connection.close()


class Archive:
    def __init__(self, root: Path, keyring: Keyring, outbox: Outbox) -> None:
        self.storage = LocalStorage(root)
        self.keyring = keyring
        self.outbox = outbox
        self.suffix = uuid.uuid4().hex[:8]

    async def add(self, name: str, line: str | None = "life", seconds: float = 2.0) -> ArchivedRecording:
        recording_id = f"{name}-{self.suffix}"
        archived = seal_into_archive(self.storage, self.keyring, recording_id,
                                     [PcmSource.from_bytes(wav_bytes(tone(seconds, 440)))], recorded_at=RECORDED)
        await self.outbox.put("recording", archived.to_record(call_id=f"call-{recording_id}", lead_id=None,
                                                              line_of_business=line))
        assert await self.outbox.flush(10)
        return archived

    def reader(self) -> RecordingReader:
        return RecordingReader(self.storage.root, self.keyring)

    def opens(self, archived: ArchivedRecording) -> bool:
        self.reader().read(FileRef(archived.recording_id, archived.storage_uri, archived.sha256))
        return True


@pytest.fixture
async def archive(tmp_path: Path, pg_dsn: str, conn: asyncpg.Connection) -> AsyncIterator[Archive]:
    async with Outbox(tmp_path / "state", pg_dsn, poll_interval=0.1) as outbox:
        yield Archive(tmp_path / "archive", Keyring.load_or_create(tmp_path / "keys"), outbox)


async def test_an_expired_recording_is_purged_to_a_tombstone_and_a_held_one_is_not(
        archive: Archive, conn: asyncpg.Connection) -> None:
    expired = await archive.add("expired")  # life insurance: 5 years
    held = await archive.add("held")
    young = await archive.add("young", line="medicare_advantage")  # 10 years
    await set_legal_hold(conn, held.recording_id, held=True, by="counsel@agency", reason="Smith v. Agency",
                         now=RECORDED + timedelta(days=30))
    after_five_years = RECORDED.replace(year=2031) + timedelta(days=1)
    named = [expired.recording_id, held.recording_id, young.recording_id]

    # A dry run says what would go and changes nothing.
    dry = await purge(conn, archive.storage, now=after_five_years, by="ops", dry_run=True, recording_ids=named)
    assert [(o.recording_id, o.refusal) for o in dry] == [
        (expired.recording_id, None), (held.recording_id, PurgeRefusal.LEGAL_HOLD),
        (young.recording_id, PurgeRefusal.RETENTION_UNMET)]
    assert "Smith v. Agency" in dry[1].reason and "2036" in dry[2].reason
    assert archive.opens(expired) and not any(o.purged for o in dry)

    # The scheduled purge (no names) takes only what is due and not held.
    done = await purge(conn, archive.storage, now=after_five_years, by="purge-job")
    assert [(o.recording_id, o.purged) for o in done if o.recording_id.endswith(archive.suffix)] == [
        (expired.recording_id, True)]
    assert not expired.path.exists() and not expired.path.with_name(f"{expired.recording_id}.dek").exists()
    assert held.path.exists() and young.path.exists() and archive.opens(held) and archive.opens(young)

    row = await conn.fetchrow("SELECT * FROM recordings WHERE recording_id = $1", expired.recording_id)
    assert row["purged_at"] == after_five_years and row["purged_by"] == "purge-job"
    assert row["sha256"].strip() == expired.sha256  # the tombstone still says what existed
    (event,) = await conn.fetch("SELECT * FROM recording_events WHERE recording_id = $1", expired.recording_id)
    assert (event["action"], event["actor"]) == ("purged", "purge-job")
    assert '"data_key_destroyed": true' in event["details"] and '"file_deleted": true' in event["details"]

    # Released, the held one goes on the next run; a purged one cannot be held any more.
    await set_legal_hold(conn, held.recording_id, held=False, by="counsel@agency", reason="settled",
                         now=after_five_years)
    assert [o.purged for o in await purge(conn, archive.storage, now=after_five_years, by="ops",
                                          recording_ids=[held.recording_id])] == [True]
    with pytest.raises(LifecycleError, match="purged"):
        await set_legal_hold(conn, held.recording_id, held=True, by="x", reason="y", now=after_five_years)
    actions = await conn.fetch("SELECT action FROM recording_events WHERE recording_id = $1 ORDER BY happened_at",
                               held.recording_id)
    assert [a["action"] for a in actions] == ["legal_hold_set", "legal_hold_released", "purged"]
    again = await purge(conn, archive.storage, now=after_five_years, by="ops", recording_ids=[expired.recording_id])
    assert again[0].refusal is PurgeRefusal.ALREADY_PURGED


async def test_a_hold_needs_who_and_why(archive: Archive, conn: asyncpg.Connection) -> None:
    recording = await archive.add("why")
    with pytest.raises(LifecycleError, match="who"):
        await set_legal_hold(conn, recording.recording_id, held=True, by="counsel", reason=" ", now=RECORDED)
    with pytest.raises(LifecycleError, match="no recording"):
        await set_legal_hold(conn, "nope", held=True, by="counsel", reason="r", now=RECORDED)


async def test_verify_finds_missing_damaged_and_orphaned_files(archive: Archive, conn: asyncpg.Connection) -> None:
    good = await archive.add("good")
    damaged = await archive.add("damaged", seconds=6.0)
    missing = await archive.add("missing")
    orphan = seal_into_archive(archive.storage, archive.keyring, f"orphan-{archive.suffix}",
                               [PcmSource.from_bytes(wav_bytes(tone(1.0, 440)))], recorded_at=RECORDED)
    blob = bytearray(damaged.path.read_bytes())
    blob[len(blob) // 2] ^= 1
    damaged.path.write_bytes(bytes(blob))
    missing.path.unlink()

    report = await verify(conn, archive.reader(), since=RECORDED - timedelta(days=1))
    mine = {(p.kind, p.recording_id) for p in report.problems if p.recording_id.endswith(archive.suffix)}
    assert mine == {("damaged", damaged.recording_id), ("missing", missing.recording_id),
                    ("orphaned", orphan.recording_id)}
    assert report.ok >= 1 and good.recording_id not in {p.recording_id for p in report.problems}
    # The figures for the metric (the test database holds other tests' rows too).
    figures = last_verification(archive.storage)
    assert figures is not None and figures.damaged == report.count("damaged") >= 1
    assert figures.missing == report.count("missing") >= 1 and figures.orphaned == report.count("orphaned") >= 2
    (row,) = await conn.fetch("SELECT * FROM recording_verifications ORDER BY finished_at DESC LIMIT 1")
    assert (row["damaged"], row["missing"], row["checked"]) == (figures.damaged, figures.missing, report.checked)


async def test_two_kek_rotations_rewrap_only_the_data_keys_and_every_recording_opens(
        archive: Archive, conn: asyncpg.Connection, tmp_path: Path) -> None:
    recordings = [await archive.add(f"rot{i}") for i in range(3)]
    audio_before = {r.recording_id: r.path.read_bytes() for r in recordings}
    first_kek = archive.keyring.current_kek_id

    keyring, report = rotate_keys(archive.storage, archive.keyring)
    assert set(report.rewrapped) >= {r.recording_id for r in recordings} and report.retired == ()
    await record_rotation(conn, report)
    later = await archive.add("after-first-rotation")  # the running keyring follows the rotation
    assert later.encryption_key_id == report.new_kek_id
    keyring, second = rotate_keys(archive.storage, keyring, retire=True)
    assert set(second.retired) == {first_kek, report.new_kek_id}
    await record_rotation(conn, second)

    assert {r.recording_id: r.path.read_bytes() for r in recordings} == audio_before  # no audio rewritten
    fresh = Keyring.for_archive(tmp_path / "keys", archive.storage.root)  # a restart after the rotations
    assert fresh.key_ids == {second.new_kek_id} and sorted((tmp_path / "keys" / "retired").iterdir())
    reader = RecordingReader(archive.storage.root, fresh)
    for recording in [*recordings, later]:
        reader.read(FileRef(recording.recording_id, recording.storage_uri, recording.sha256))
    rows = await conn.fetch("SELECT DISTINCT encryption_key_id FROM recordings WHERE recording_id = ANY($1::text[])",
                            [r.recording_id for r in [*recordings, later]])
    assert [row["encryption_key_id"] for row in rows] == [second.new_kek_id]
    with pytest.raises(RecordingKeysMissing):  # the old keys folder alone no longer opens this archive
        Keyring.for_archive(tmp_path / "keys" / "retired", archive.storage.root)


async def test_a_retired_kek_is_kept_while_a_format1_recording_needs_it(archive: Archive) -> None:
    from recordings.crypto import seal

    old = archive.storage.root / "2025/01/02/old-recording.wav.sealed"
    old.parent.mkdir(parents=True)
    old.write_bytes(seal(wav_bytes(tone(1.0, 440)), archive.keyring.current, "old-recording"))
    first = archive.keyring.current_kek_id
    keyring, report = rotate_keys(archive.storage, archive.keyring, retire=True)
    assert report.retired == () and report.kept_for_format1 == (first,)
    assert first in keyring.key_ids
    with pytest.raises(RecordingCryptoError):
        Keyring.load(archive.storage.root / "none")
