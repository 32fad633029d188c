"""Real audio for the archive's tests: WAV files with known tones, and the project's prompts."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from recordings.crypto import Keyring
from tests.audio import SOUNDS

RATE = 8000


def tone(seconds: float, hz: float, level: float = 8000.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype("<i2")


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def samples_of(data: bytes) -> tuple[np.ndarray, int]:
    """(frames x channels) samples of WAV bytes, and the sample rate."""
    with wave.open(io.BytesIO(data)) as wav:
        channels = wav.getnchannels()
        rate = wav.getframerate()
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    return frames.reshape(-1, channels), rate


def prompt(name: str) -> np.ndarray:
    samples, rate = samples_of((SOUNDS / name).read_bytes())
    assert rate == RATE
    return samples[:, 0].astype("<i2")


def call_audio(seconds: float = 12.0) -> np.ndarray:
    """A call as the archive gets it: the recording notice, then speech, with a 440 Hz tone
    (the simulated agent) under all of it."""
    notice, talk = prompt("recording-notice.wav"), prompt("person-talk.wav")
    body = np.concatenate([notice, np.zeros(RATE // 2, "<i2"), talk])
    total = int(seconds * RATE)
    body = np.pad(body, (0, max(0, total - body.size)))[:total].astype(np.float64)
    return np.clip(body + tone(seconds, 440, 1500).astype(np.float64), -32768, 32767).astype("<i2")


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def keyring(keys_dir: Path) -> Keyring:
    return Keyring.load_or_create(keys_dir)


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"
