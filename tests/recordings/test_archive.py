"""The archive on real files through the real ffmpeg: compressed, two-channel, sealed, private,
and still the call's audio when opened."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from recordings.archive import (
    ArchivedRecording,
    archive_legs,
    archive_recording,
    read_recording,
    seal_into_archive,
)
from recordings.crypto import Keyring, seal
from recordings.reader import FileRef, RecordingReader, RecordingUnavailable, representation
from recordings.storage import LocalStorage
from recordings.transcode import AudioFormat, PcmSource
from tests.audio import notice_match, recorded_audio
from tests.recordings.conftest import RATE, call_audio, samples_of, tone, wav_bytes

RECORDED = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


class AsteriskSpool:
    """Asterisk's stored recordings as ARI serves them (`GET .../file`, `DELETE`)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def stored_recording_file(self, name: str) -> bytes:
        return self.files[name]

    async def delete_stored_recording(self, name: str) -> None:
        del self.files[name]


def best_correlation(original: np.ndarray, decoded: np.ndarray, max_lag: int = 4) -> float:
    """Waveform correlation at the best small lag (the codec delays by a fraction of a sample)."""
    n = min(original.size, decoded.size) - 2 * max_lag
    a = original[max_lag : max_lag + n].astype(np.float64)
    return max(float(np.corrcoef(a, decoded[max_lag + lag : max_lag + lag + n])[0, 1])
               for lag in range(-max_lag, max_lag + 1))


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(samples.size, 1 / RATE)[int(np.argmax(spectrum))])


def test_a_call_is_stored_as_opus_a_fraction_of_the_wav_and_opens_to_the_same_audio(
        tmp_path: Path, keyring: Keyring, archive_dir: Path, keys_dir: Path) -> None:
    audio = call_audio(12.0)
    wav = wav_bytes(audio)
    spool = AsteriskSpool({"call-1-recording": wav})
    archived = asyncio.run(archive_recording(spool, "call-1-recording", archive_dir, keyring=keyring,
                                             recorded_at=RECORDED))
    assert spool.files == {}  # Asterisk's copy goes once the archive has it
    assert (archived.format, archived.channels, archived.channel_layout) == ("opus", 1, "mixed")
    assert archived.path == archive_dir / "2026/11/24/call-1-recording.opus.sealed"
    assert archived.size_bytes < len(wav) / 5  # measured: 16 kbit/s against 128 kbit/s
    assert archived.duration_seconds == pytest.approx(12.0)
    assert archived.encryption_key_id == keyring.current_kek_id

    # Sealed: neither the Ogg stream nor the audio is readable on disk; folders 0700, files 0600.
    stored = read_recording(archived.path, keyring)
    assert stored.startswith(b"OggS") and hashlib.sha256(stored).hexdigest() == archived.sha256
    assert b"OggS" not in archived.path.read_bytes() and b"OpusHead" not in archived.path.read_bytes()
    for path in (archived.path, archived.path.with_name("call-1-recording.dek")):
        assert path.stat().st_mode & 0o777 == 0o600
    for folder in (archive_dir, archive_dir / "2026", archive_dir / "2026/11", archive_dir / "2026/11/24"):
        assert folder.stat().st_mode & 0o777 == 0o700

    # Opened as WAV it is the call: same length, the waveform correlates, the tones and the
    # recording notice are still found where the tests look for them.
    decoded = recorded_audio(archived.path.as_uri(), "call-1-recording", keys_dir)
    samples, rate = samples_of(decoded)
    assert rate == RATE and samples.shape == (audio.size, 1)
    assert best_correlation(audio.astype(np.float64), samples[:, 0]) > 0.9
    assert dominant_hz(samples[:, 0]) == pytest.approx(440, abs=2)
    assert notice_match(decoded) > 0.5  # measured ~0.9 here; ~1.0 on the WAV itself
    assert notice_match(wav_bytes(tone(12.0, 440, 1500))) < 0.1

    record = archived.to_record(call_id="call-1", lead_id="lead-1", line_of_business="medicare_advantage")
    assert record["retain_until"] == RECORDED.replace(year=2036) and record["format"] == "opus"


def test_two_legs_become_one_two_channel_recording_and_mix_to_mono_on_request(
        keyring: Keyring, archive_dir: Path) -> None:
    agent, lead = tone(3.0, 440), tone(4.5, 1000)  # the agent's leg ends first
    spool = AsteriskSpool({"snoop-agent": wav_bytes(agent), "snoop-lead": wav_bytes(lead)})
    archived = asyncio.run(archive_legs(spool, "snoop-agent", "snoop-lead", archive_dir,
                                        recording_id="call-2-recording", keyring=keyring, recorded_at=RECORDED))
    assert spool.files == {}
    assert (archived.channels, archived.channel_layout) == (2, "agent,lead")
    assert archived.duration_seconds == pytest.approx(4.5)  # the longer leg, whole

    reader = RecordingReader(archive_dir, keyring)
    with reader.open(FileRef("call-2-recording", archived.storage_uri, archived.sha256)) as opened:
        opened.check()
        assert (opened.stored_format, opened.channels, opened.frames) == (AudioFormat.OPUS, 2, lead.size)
        stereo, _ = samples_of(b"".join(representation(opened, AudioFormat.WAV).chunks()))
        mono, _ = samples_of(b"".join(representation(opened, AudioFormat.WAV, mix_to_mono=True).chunks()))
    assert stereo.shape == (lead.size, 2) and mono.shape == (lead.size, 1)
    first = slice(RATE // 2, int(2.5 * RATE))
    assert dominant_hz(stereo[first, 0]) == pytest.approx(440, abs=2)  # agent on the left
    assert dominant_hz(stereo[first, 1]) == pytest.approx(1000, abs=2)  # lead on the right
    assert best_correlation(agent[first].astype(np.float64), stereo[first, 0]) > 0.95
    assert best_correlation(lead[first].astype(np.float64), stereo[first, 1]) > 0.95
    tail = slice(int(3.5 * RATE), int(4.4 * RATE))
    assert np.sqrt(np.mean(stereo[tail, 0] ** 2)) < 50 < np.sqrt(np.mean(stereo[tail, 1] ** 2))  # agent gone
    spectrum = np.abs(np.fft.rfft(mono[first, 0]))
    frequencies = np.fft.rfftfreq(mono[first, 0].size, 1 / RATE)
    assert {round(float(f)) for f in frequencies[np.argsort(spectrum)[-2:]]} == {440, 1000}  # both, mixed


def test_a_recording_ffmpeg_cannot_transcode_is_still_archived_as_recorded(
        keyring: Keyring, archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no ffmpeg
    wav = wav_bytes(tone(2.0, 440))
    archived = seal_into_archive(LocalStorage(archive_dir), keyring, "call-3-recording",
                                 [PcmSource.from_bytes(wav)], recorded_at=RECORDED)
    assert archived.format == "wav" and archived.path.name == "call-3-recording.wav.sealed"
    assert read_recording(archived.path, keyring) == wav
    reader = RecordingReader(archive_dir, keyring)
    assert reader.read(FileRef("call-3-recording", archived.storage_uri, archived.sha256)) == wav


def test_recordings_sealed_before_the_segmented_format_still_open(keyring: Keyring, archive_dir: Path,
                                                                   keys_dir: Path) -> None:
    wav = wav_bytes(call_audio(5.0))
    old = archive_dir / "2025/01/02/call-4-recording.wav.sealed"
    old.parent.mkdir(parents=True)
    old.write_bytes(seal(wav, keyring.current, "call-4-recording"))
    sha = hashlib.sha256(wav).hexdigest()
    reader = RecordingReader(archive_dir, keyring)
    with reader.open(FileRef("call-4-recording", old.as_uri(), sha)) as opened:
        opened.check()
        assert (opened.stored_format, opened.channels, opened.frames) == (AudioFormat.WAV, 1, 5 * RATE)
        assert b"".join(opened.iter_range(1000, 3000)) == wav[1000:3000]
        assert len(b"".join(representation(opened, AudioFormat.OPUS).chunks())) < len(wav) / 5
    assert recorded_audio(old.as_uri(), "call-4-recording", keys_dir) == wav
    with pytest.raises(RecordingUnavailable, match="checksum"):
        reader.read(FileRef("call-4-recording", old.as_uri(), "0" * 64))


def test_an_archive_made_before_the_permissions_rule_is_tightened_as_it_is_written(
        keyring: Keyring, archive_dir: Path) -> None:
    (archive_dir / "2026/11/24").mkdir(parents=True, mode=0o755)
    for folder in (archive_dir, archive_dir / "2026", archive_dir / "2026/11", archive_dir / "2026/11/24"):
        folder.chmod(0o755)
    archived = seal_into_archive(LocalStorage(archive_dir), keyring, "call-6-recording",
                                 [PcmSource.from_bytes(wav_bytes(tone(1.0, 440)))], recorded_at=RECORDED)
    for folder in (archive_dir, archive_dir / "2026", archive_dir / "2026/11", archive_dir / "2026/11/24"):
        assert folder.stat().st_mode & 0o777 == 0o700
    assert archived.path.stat().st_mode & 0o777 == 0o600


def test_the_archive_lists_the_keys_it_needs(keyring: Keyring, archive_dir: Path) -> None:
    seal_into_archive(LocalStorage(archive_dir), keyring, "call-5-recording",
                      [PcmSource.from_bytes(wav_bytes(tone(1.0, 440)))], recorded_at=RECORDED)
    listed = json.loads((archive_dir / "archive-keys.json").read_text())
    assert listed == {"kek_ids": [keyring.current_kek_id]}


def test_calls_archived_at_once_into_a_new_archive_all_get_there(keyring: Keyring, archive_dir: Path) -> None:
    async def many() -> list[ArchivedRecording]:
        spool = AsteriskSpool({f"call-{i}-recording": wav_bytes(tone(1.0, 440 + i)) for i in range(8)})
        return await asyncio.gather(*(archive_recording(spool, name, archive_dir, keyring=keyring)
                                      for name in list(spool.files)))

    archived = asyncio.run(many())
    assert len({a.recording_id for a in archived}) == 8 and all(a.path.exists() for a in archived)
    assert not list(archive_dir.rglob("*.partial"))
