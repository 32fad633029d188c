"""What a WAV file holds, in the terms tests care about: is there sound, and which tone."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class AudioReport:
    seconds: float
    rms: float
    dominant_hz: float
    voiced_fraction: float

    @property
    def silent(self) -> bool:
        return self.rms < 100.0


def analyse_wav(path: Path) -> AudioReport:
    """RMS level (16-bit scale), dominant frequency, and share of 20 ms frames with sound."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        channels = wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if samples.size == 0:
        return AudioReport(0.0, 0.0, 0.0, 0.0)
    rms = float(np.sqrt(np.mean(samples**2)))
    spectrum = np.abs(np.fft.rfft(samples))
    spectrum[0] = 0.0
    dominant = float(np.fft.rfftfreq(samples.size, 1.0 / rate)[int(np.argmax(spectrum))])
    frame = max(1, rate // 50)
    usable = samples[: samples.size - samples.size % frame].reshape(-1, frame)
    voiced = float(np.mean(np.sqrt(np.mean(usable**2, axis=1)) > 300.0)) if usable.size else 0.0
    return AudioReport(samples.size / rate, rms, dominant, voiced)
