"""`dialer recording ...` end to end: real files, real PostgreSQL, the CLI's own outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from crm_bridge.migrate import migrate
from dialer.cli import main
from recordings.archive import ArchivedRecording, read_recording, seal_into_archive
from recordings.crypto import Keyring
from recordings.storage import LocalStorage
from recordings.transcode import PcmSource
from tests.recordings.conftest import RATE, samples_of, tone, wav_bytes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def env(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    async def schema() -> None:
        connection = await asyncpg.connect(pg_dsn)
        await migrate(connection)
        await connection.close()

    asyncio.run(schema())
    for name, value in {"DIALER_RECORDING_KEYS_DIR": tmp_path / "keys", "DIALER_RECORDINGS_DIR": tmp_path / "archive",
                        "DIALER_STATE_DIR": tmp_path / "state", "DIALER_PG_DSN": pg_dsn}.items():
        monkeypatch.setenv(name, str(value))
    yield tmp_path


def _archive(tmp_path: Path, pg_dsn: str, *, legs: bool = False) -> ArchivedRecording:
    keyring = Keyring.load_or_create(tmp_path / "keys")
    recording_id = f"rec-{uuid.uuid4().hex[:10]}"
    sources = [PcmSource.from_bytes(wav_bytes(tone(3.0, hz))) for hz in ((440, 1000) if legs else (440,))]
    archived = seal_into_archive(LocalStorage(tmp_path / "archive"), keyring, recording_id, sources,
                                 recorded_at=datetime(2026, 1, 5, tzinfo=UTC),
                                 layout=("agent", "lead") if legs else ("mixed",))
    record = archived.to_record(call_id=f"call-{recording_id}", lead_id=None, line_of_business="life")

    async def insert() -> None:
        connection = await asyncpg.connect(pg_dsn)
        try:
            names = list(record)
            await connection.execute(
                f"INSERT INTO recordings ({', '.join(names)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))})",
                *record.values())
        finally:
            await connection.close()

    asyncio.run(insert())
    return archived


def _accesses(pg_dsn: str, recording_id: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(pg_dsn)
        try:
            return await connection.fetch("SELECT * FROM recording_accesses WHERE recording_id = $1", recording_id)
        finally:
            await connection.close()

    return asyncio.run(fetch())


def test_open_writes_a_private_wav_and_the_access_is_audited_first(env: Path, pg_dsn: str) -> None:
    archived = _archive(env, pg_dsn, legs=True)
    out = env / "exports" / "nested" / "call.wav"
    assert main(["recording", "open", str(archived.path), "--out", str(out)]) == 0
    samples, rate = samples_of(out.read_bytes())
    assert rate == RATE and samples.shape == (3 * RATE, 2)
    assert out.stat().st_mode & 0o777 == 0o600
    assert (env / "exports").stat().st_mode & 0o777 == 0o700 and out.parent.stat().st_mode & 0o777 == 0o700
    # By recording id (the row gives the checksum), mixed to mono, as the stored Opus.
    assert main(["recording", "open", archived.recording_id, "--out", str(env / "mono.wav"), "--mix", "mono"]) == 0
    assert samples_of((env / "mono.wav").read_bytes())[0].shape == (3 * RATE, 1)
    assert main(["recording", "open", archived.storage_uri, "--format", "opus", "--out", str(env / "c.ogg")]) == 0
    assert (env / "c.ogg").read_bytes() == read_recording(archived.path, Keyring.load(env / "keys"))

    accesses = _accesses(pg_dsn, archived.recording_id)
    assert len(accesses) == 3 and {a["channel"] for a in accesses} == {"cli"}
    assert {a["role"] for a in accesses} == {"operator"} and all("@" in a["remote"] for a in accesses)
    assert [a["call_id"] for a in accesses].count(f"call-{archived.recording_id}") == 1  # known by id


def test_open_refuses_without_the_keys_or_with_a_damaged_file_and_hands_nothing_out(
        env: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    archived = _archive(env, pg_dsn)
    monkeypatch.setenv("DIALER_RECORDING_KEYS_DIR", str(env / "mistyped"))
    assert main(["recording", "open", str(archived.path), "--out", str(env / "x.wav")]) == 2
    assert "no recording keys" in capsys.readouterr().err and not (env / "mistyped").exists()
    monkeypatch.setenv("DIALER_RECORDING_KEYS_DIR", str(env / "keys"))
    blob = bytearray(archived.path.read_bytes())
    blob[-3] ^= 1
    archived.path.write_bytes(bytes(blob))
    assert main(["recording", "open", archived.recording_id, "--out", str(env / "x.wav")]) == 2
    assert "integrity" in capsys.readouterr().err
    assert main(["recording", "open", "no-such-recording", "--out", str(env / "x.wav")]) == 2
    assert "No recording" in capsys.readouterr().err
    # A file that is no recording at all (a CSV given by mistake) was copied out as "audio", exit 0.
    leads = env / "leads.csv"
    leads.write_text("name,phone\nAnn,2125550142\n")
    assert main(["recording", "open", str(leads), "--out", str(env / "x.wav")]) == 2
    assert "neither a sealed recording nor WAV audio" in capsys.readouterr().err
    assert not (env / "x.wav").exists() and _accesses(pg_dsn, archived.recording_id) == []


def test_hold_purge_verify_and_rotate_from_the_command_line(env: Path, pg_dsn: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    kept, gone = _archive(env, pg_dsn), _archive(env, pg_dsn)
    assert main(["recording", "hold", kept.recording_id, "--reason", "Smith v. Agency", "--by", "counsel"]) == 0
    later = "2031-02-01T00:00Z"
    assert main(["recording", "purge", "--dry-run", "--now", later, kept.recording_id, gone.recording_id]) == 1
    out = capsys.readouterr().out
    assert f"refused {kept.recording_id}: " in out and "Smith v. Agency" in out
    assert f"would purge {gone.recording_id}" in out and gone.path.exists()
    assert main(["recording", "purge", "--now", later, gone.recording_id]) == 0
    assert f"purged {gone.recording_id}" in capsys.readouterr().out and not gone.path.exists()
    assert main(["recording", "purge", "--now", "2027-01-01T00:00Z", kept.recording_id]) == 1
    assert "legal hold" in capsys.readouterr().out

    assert main(["recording", "rotate-key"]) == 0
    assert "data keys re-wrapped, no audio rewritten" in capsys.readouterr().out
    assert main(["recording", "rotate-key", "--retire"]) == 0
    assert "retired" in capsys.readouterr().out
    assert main(["recording", "verify", "--since", "2026-01-01"]) == 0, capsys.readouterr().out
    assert f"{kept.recording_id}" not in capsys.readouterr().out
    assert main(["recording", "open", kept.recording_id, "--out", str(env / "kept.wav")]) == 0
    kept.path.unlink()
    assert main(["recording", "verify", "--since", "2026-01-01"]) == 1
    assert f"missing: {kept.recording_id}" in capsys.readouterr().out
