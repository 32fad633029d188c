"""`dialer backup` then `dialer restore` into a fresh database, as on a new server: every row is
kept, the keyring comes back, and an archived recording opens (its row, its file, its key).
And what a start says of the CRM's campaigns: their caller IDs against the vouched numbers."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
import structlog

from crm_bridge.migrate import ensure_schema
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore
from dialer.commands.backup import table_counts
from dialer.commands.config import log_caller_id_problems
from dialer.provision.trunks import CallerIdRecord
from dialer.settings import from_environment
from recordings.archive import archive_recording
from recordings.crypto import Keyring
from recordings.reader import RecordingReader
from tests.conftest import ADMIN_DSN, RUN_ID
from tests.crm import factories

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SPEECH = Path(__file__).resolve().parents[2] / "asterisk-config" / "sounds" / "hello.wav"


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """A source database and the name of an empty one to restore into (neither exists after)."""
    names = [f"dialer_test_{RUN_ID}_backup_{uuid.uuid4().hex[:6]}", f"dialer_test_{RUN_ID}_restored_{uuid.uuid4().hex[:6]}"]
    server = ADMIN_DSN.rpartition("/")[0]
    yield f"{server}/{names[0]}", f"{server}/{names[1]}"

    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


class StoredFile:
    """Asterisk's stored recording, as `archive_recording` fetches it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def stored_recording_file(self, name: str) -> bytes:
        return self.data

    async def delete_stored_recording(self, name: str) -> None:
        return None


async def seed(dsn: str, state: Path, archive: Path, keys: Path) -> str:
    """A lead, a campaign, an agent, an ended call, a decision, a disposition, an opt-out and
    an archived, sealed recording of the call; returns the recording's id."""
    await ensure_schema(dsn)
    recording_id = f"rec-{uuid.uuid4().hex[:10]}"
    archived = await archive_recording(StoredFile(SPEECH.read_bytes()), recording_id, archive,
                                       keyring=Keyring.load_or_create(keys))
    async with Outbox(state, dsn) as outbox:
        decision = factories.decision(allowed=True, reasons=[])
        for kind, record in [
            ("lead_upsert", factories.lead("lead-1")), ("campaign_upsert", factories.campaign("camp-1")),
            ("agent_upsert", factories.agent("agent-1001")), ("compliance_decision", decision),
            ("call", factories.call("call-1", 1, compliance_decision_id=decision["decision_id"])),
            ("call", factories.ended_call("call-1", 2)), ("disposition", factories.disposition("appointment_set")),
            ("opt_out", factories.opt_out("+14045550199")),
            ("recording", archived.to_record(call_id="call-1", lead_id="lead-1")),
        ]:
            await outbox.put(kind, record)
        assert await outbox.flush(20)
    return recording_id


async def every_row(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    connection = await asyncpg.connect(dsn)
    try:
        tables = [row["table_name"] for row in await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")]
        return {table: sorted((tuple(row.values()) for row in await connection.fetch(f'SELECT * FROM "{table}"')),
                              key=repr)
                for table in tables}
    finally:
        await connection.close()


def dialer(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], env={**os.environ, "DIALER_CONFIG": "", **env},
                          capture_output=True, text=True, timeout=90, check=False)


def test_backup_then_restore_into_a_fresh_database_keeps_every_row_and_opens_the_recording(
        databases: tuple[str, str], tmp_path: Path) -> None:
    source, restored = databases
    archive, keys, state = tmp_path / "recordings", tmp_path / "keys", tmp_path / "state"
    recording_id = asyncio.run(seed(source, state / "outbox", archive, keys))
    (state / "sip-credentials.json").write_text('{"version": 1}\n')
    env = {"DIALER_PG_DSN": source, "DIALER_RECORDINGS_DIR": str(archive), "DIALER_RECORDING_KEYS_DIR": str(keys),
           "DIALER_STATE_DIR": str(state)}
    backup_file = tmp_path / "nightly.tar.gz"
    result = dialer(["backup", "--out", str(backup_file)], env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert "1 recordings in the manifest" in result.stdout

    # A new server: the same archive folder, an empty keyring folder, an empty state, a new database.
    new_keys, new_state = tmp_path / "new-keys", tmp_path / "new-state"
    env_new = {**env, "DIALER_RECORDING_KEYS_DIR": str(new_keys), "DIALER_STATE_DIR": str(new_state)}
    result = dialer(["restore", str(backup_file), "--pg-dsn", restored], env_new)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Recordings: 1 of 1 archived files are in" in result.stdout
    assert "Opened 1 recording(s): keys, rows and files fit." in result.stdout
    assert sorted(path.name for path in new_keys.iterdir()) == sorted(path.name for path in keys.iterdir())
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in new_keys.iterdir())
    assert (new_state / "sip-credentials.json").read_text() == '{"version": 1}\n'

    before, after = asyncio.run(every_row(source)), asyncio.run(every_row(restored))
    assert after == before
    assert asyncio.run(table_counts(restored))["recordings"] == 1

    async def open_restored() -> tuple[bytes, str]:
        store = await CrmStore.open(restored)
        try:
            recording = await store.get_recording(recording_id)
            assert recording is not None
            return RecordingReader(archive, Keyring.load(new_keys)).read(recording), recording.sha256.strip()
        finally:
            await store.close()

    # The archive keeps the speech compressed (Opus in Ogg): it opens with the restored keys
    # and is exactly what was archived (its checksum, kept in the row).
    audio, sha256 = asyncio.run(open_restored())
    assert audio[:4] == b"OggS" and hashlib.sha256(audio).hexdigest() == sha256

    # Restoring over a database that has data is refused, in one sentence.
    again = dialer(["restore", str(backup_file), "--pg-dsn", restored], env_new)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().endswith("already has tables: restore into a new database "
                                         "(--pg-dsn .../dialer_restored) or drop it first.")


def test_a_keyring_that_differs_is_not_overwritten(databases: tuple[str, str], tmp_path: Path) -> None:
    source, restored = databases
    archive, keys, state = tmp_path / "recordings", tmp_path / "keys", tmp_path / "state"
    asyncio.run(seed(source, state / "outbox", archive, keys))
    env = {"DIALER_PG_DSN": source, "DIALER_RECORDINGS_DIR": str(archive), "DIALER_RECORDING_KEYS_DIR": str(keys),
           "DIALER_STATE_DIR": str(state)}
    backup_file = tmp_path / "b.tar.gz"
    assert dialer(["backup", "--out", str(backup_file)], env).returncode == 0
    key = next(keys.iterdir())
    key.write_bytes(b"x" * 32)  # another key under the same name
    result = dialer(["restore", str(backup_file), "--pg-dsn", restored], env)
    assert result.returncode == 2 and f"dialer: {key} exists with other content" in result.stderr


def test_campaigns_with_unvouched_caller_ids_are_named_at_start(databases: tuple[str, str], tmp_path: Path) -> None:
    source, _ = databases
    asyncio.run(seed(source, tmp_path / "outbox", tmp_path / "recordings", tmp_path / "keys"))  # camp-1: +14045550100
    vouched = CallerIdRecord("+14045550111", "Example Agency LLC", "Jane Smith", dt.date(2026, 3, 1))
    settings = from_environment({}, pg_dsn=source, caller_ids=(vouched,))
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(log_caller_id_problems(settings, structlog.get_logger("dialer.deploy"))) == 1
    assert logs == [{"event": "caller_id_not_vouched", "log_level": "error", "campaign_id": "camp-1",
                     "problem": "Caller ID +14045550100 is not among the agency's vouched numbers: add it to "
                                "[[caller_ids]] with its owner, vouched_by and vouched_on (16 CFR 310.4(a)(8))."}]
    vouching = from_environment({}, pg_dsn=source, caller_ids=(replace(vouched, number="+14045550100"),))
    assert asyncio.run(log_caller_id_problems(vouching, structlog.get_logger("dialer.deploy"))) == 0


def test_a_restore_that_fails_halfway_restores_nothing_and_can_be_run_again(
        databases: tuple[str, str], tmp_path: Path) -> None:
    import io
    import tarfile

    source, restored = databases
    archive, keys, state = tmp_path / "recordings", tmp_path / "keys", tmp_path / "state"
    asyncio.run(seed(source, state / "outbox", archive, keys))
    env = {"DIALER_PG_DSN": source, "DIALER_RECORDINGS_DIR": str(archive), "DIALER_RECORDING_KEYS_DIR": str(keys),
           "DIALER_STATE_DIR": str(state)}
    backup_file = tmp_path / "nightly.tar.gz"
    assert dialer(["backup", "--out", str(backup_file)], env).returncode == 0
    # The same backup with its database dump damaged in its data: the schema restores, the data does not.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(backup_file, "r:gz") as whole, tarfile.open(damaged, "w:gz") as cut:
        for member in whole.getmembers():
            data = whole.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("/crm.dump"):
                at = len(data) * 99 // 100  # in the table data, after the table of contents
                data = data[:at] + bytes(256) + data[at + 256:]
            cut.addfile(member, io.BytesIO(data))
    env_new = {**env, "DIALER_RECORDING_KEYS_DIR": str(tmp_path / "new-keys"), "DIALER_STATE_DIR": str(tmp_path / "s2")}
    failed = dialer(["restore", str(damaged), "--pg-dsn", restored], env_new)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    assert f"dialer: pg_restore into {restored.rpartition('/')[2]} failed, and restored nothing: " in failed.stderr
    # Was: the tables the dump had created stayed, and this refused ("already has tables").
    again = dialer(["restore", str(backup_file), "--pg-dsn", restored], env_new)
    assert again.returncode == 0, again.stderr
