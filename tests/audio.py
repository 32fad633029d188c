"""What a WAV file holds, in the terms tests care about: is there sound, and which tone."""

from __future__ import annotations

import io
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


SOUNDS = Path(__file__).resolve().parents[1] / "asterisk-config" / "sounds"
RECORDING_NOTICE = SOUNDS / "recording-notice.wav"


def recorded_audio(storage_uri: str, recording_id: str, keys_dir: Path) -> bytes:
    """The audio of an archived call recording as 16-bit WAV at its recorded rate, mixed to
    mono (whatever the archive's format and channels), opened with the keyring in `keys_dir`."""
    from recordings.crypto import Keyring
    from recordings.reader import FileRef, RecordingReader, representation
    from recordings.storage import LocalStorage, file_uri_path
    from recordings.transcode import AudioFormat

    path = file_uri_path(storage_uri)
    reader = RecordingReader(path.parent, Keyring.load(keys_dir), LocalStorage(path.parent))
    with reader.open(FileRef(recording_id, path.as_uri())) as opened:
        opened.check()
        return b"".join(representation(opened, AudioFormat.WAV, mix_to_mono=True).chunks())


def recorded_channels(storage_uri: str, recording_id: str, keys_dir: Path) -> list[bytes]:
    """Each channel of an archived call recording as its own mono 16-bit WAV: one side of the
    call alone where the recording keeps the two sides apart (a voice is found far more surely
    without the other side talking over it), or the single mixed channel where it does not."""
    from recordings.crypto import Keyring
    from recordings.reader import FileRef, RecordingReader, representation
    from recordings.storage import LocalStorage, file_uri_path
    from recordings.transcode import AudioFormat

    path = file_uri_path(storage_uri)
    reader = RecordingReader(path.parent, Keyring.load(keys_dir), LocalStorage(path.parent))
    with reader.open(FileRef(recording_id, path.as_uri())) as opened:
        opened.check()
        data = b"".join(representation(opened, AudioFormat.WAV).chunks())
    with wave.open(io.BytesIO(data)) as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, channels)
    result = []
    for channel in range(channels):
        out = io.BytesIO()
        with wave.open(out, "wb") as mono:
            mono.setnchannels(1)
            mono.setsampwidth(2)
            mono.setframerate(rate)
            mono.writeframes(np.ascontiguousarray(samples[:, channel]).tobytes())
        result.append(out.getvalue())
    return result


def _samples(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 8000
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def _without_agent_tone(audio: np.ndarray) -> np.ndarray:
    """The call minus the simulated agent's steady 440 Hz tone, which would drown the speech."""
    spectrum = np.fft.rfft(audio)
    frequencies = np.fft.rfftfreq(audio.size, 1 / 8000)
    spectrum[np.abs(frequencies - 440) < 15] = 0
    return np.fft.irfft(spectrum, audio.size)


def notice_match(recording: bytes, template_path: Path = RECORDING_NOTICE, seconds: float | None = None) -> float:
    """The highest normalised correlation of a prompt's waveform (the recording notice unless
    `template_path` says otherwise) with any stretch of a call's recording (8 kHz WAV bytes):
    ~0.06 for calls without it, 0.25-0.6 with it mixed under speech. `seconds` takes only the
    prompt's first seconds (a call may end with the prompt's last frames)."""
    template = _samples(template_path.read_bytes())
    if seconds is not None:
        template = template[: int(seconds * 8000)]
    return _best_correlation(_without_agent_tone(_samples(recording)), template)


def contains_audio(recording: bytes, template_path: Path, *, start: float, seconds: float) -> float:
    """Like `notice_match`, for a stretch of a looping source: the best correlation of
    `template_path`'s audio from `start` for `seconds` with any stretch of the recording. A
    browser's fake microphone loops its file from wherever capture began, so a middle stretch
    is found where the file's first seconds may not be."""
    template = _samples(template_path.read_bytes())[int(start * 8000): int((start + seconds) * 8000)]
    return _best_correlation(_without_agent_tone(_samples(recording)), template)


def _best_correlation(audio: np.ndarray, template: np.ndarray) -> float:
    if template.size == 0 or audio.size < template.size:
        return 0.0
    size = 1 << int(np.ceil(np.log2(audio.size + template.size)))
    correlation = np.fft.irfft(np.fft.rfft(audio, size) * np.conj(np.fft.rfft(template, size)), size)
    correlation = correlation[: audio.size - template.size + 1]
    energy = np.concatenate(([0.0], np.cumsum(audio**2)))
    window_energy = energy[template.size:] - energy[: audio.size - template.size + 1]  # each stretch's energy
    scores = correlation / np.sqrt(np.maximum(window_energy, 1e-9) * float(np.sum(template**2)))
    return float(scores.max())


def recorded_sides(storage_uri: str, recording_id: str, keys_dir: Path) -> list[bytes]:
    """A call's recording mixed to mono, then each of its channels alone (`recorded_channels`):
    take the best figure over them, as a voice or a prompt stands out most where the other
    party does not talk over it (the agent channel holds every prompt the lead hears)."""
    return [recorded_audio(storage_uri, recording_id, keys_dir), *recorded_channels(storage_uri, recording_id, keys_dir)]
