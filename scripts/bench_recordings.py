"""Benchmark the recordings archive on real files with the real ffmpeg (no servers needed).

    nice -n 10 .venv/bin/python scripts/bench_recordings.py [--hours 3] [--sample-minutes 10]

Every figure is printed next to a baseline measured in the same run:
  1. bytes per talk hour: the archive's Opus (mono, and two channels) vs the 8 kHz 16-bit WAV
     Asterisk records, and the storage this means for 50 agents x 6 talk hours a day x 250
     days a year x 10 years (750,000 talk hours);
  2. fidelity: the decoded audio's waveform correlation with the original, and the recording
     notice still found in it (tests/audio.notice_match) vs the same score on the WAV itself;
  3. transcode + seal time per talk minute vs sealing the WAV alone (no transcoding);
  4. peak memory (RSS of the Python process, and of ffmpeg) sealing and opening calls of
     10 minutes, 1 hour and `--hours` hours: constant, not proportional to the length;
  5. Range read latency (64 KiB at random offsets of the longest call, each read authenticated)
     vs a plain read of the same bytes from the unencrypted WAV.
The speech is the project's own prompts (asterisk-config/sounds) tiled to length, with a low
noise floor so silence is not digital zero. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recordings.archive import seal_into_archive  # noqa: E402
from recordings.crypto import Keyring  # noqa: E402
from recordings.reader import FileRef, RecordingReader, representation  # noqa: E402
from recordings.storage import LocalStorage  # noqa: E402
from recordings.transcode import AudioFormat, PcmSource  # noqa: E402
from tests.audio import SOUNDS, notice_match  # noqa: E402

RATE = 8000
RECORDED = datetime(2026, 11, 24, tzinfo=UTC)
TALK_HOURS_PER_DECADE = 50 * 6 * 250 * 10


def _prompt(name: str) -> np.ndarray:
    with wave.open(str(SOUNDS / name)) as wav:
        assert wav.getframerate() == RATE
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def _speech_block(seed: int) -> np.ndarray:
    """About 40 s of a call: speech, prompts, pauses."""
    rng = np.random.default_rng(seed)
    parts = []
    for name in ("person-talk.wav", "recording-notice.wav", "hello.wav", "machine-greeting.wav", "person-talk.wav"):
        parts.append(_prompt(name))
        parts.append(np.zeros(int(rng.uniform(0.3, 1.2) * RATE), dtype="<i2"))
    return np.concatenate(parts)


def write_call(path: Path, seconds: float, seed: int = 1) -> None:
    """A WAV of `seconds`, written block by block (never the whole call in memory)."""
    block = _speech_block(seed).astype(np.float64)
    rng = np.random.default_rng(seed)
    total = int(seconds * RATE)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        written = 0
        while written < total:
            piece = block[: total - written] + rng.normal(0, 30, min(block.size, total - written))
            wav.writeframes(np.clip(piece, -32768, 32767).astype("<i2").tobytes())
            written += piece.size


# -- child processes: one measurement each, so each peak RSS is its own --------------------------
def _hwm_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (VmHWM). Not getrusage's ru_maxrss: that one carries the
    parent's peak across fork and exec, so a child would report its parent's size."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _ChildPeaks(threading.Thread):
    """Samples the peak RSS of this process's children (ffmpeg) while they run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            for children in Path("/proc/self/task").glob("*/children"):
                try:
                    pids = children.read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    self.peak = max(self.peak, _hwm_mb(pid))


CHILD_PEAKS = _ChildPeaks()


def _peaks() -> dict[str, float]:
    CHILD_PEAKS.stopped.set()
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if tracemalloc.is_tracing() else 0.0
    return {"python_rss_mb": _hwm_mb(), "ffmpeg_rss_mb": CHILD_PEAKS.peak, "python_heap_peak_mb": heap}


def child_seal(args: argparse.Namespace) -> dict[str, object]:
    keyring = Keyring.load_or_create(Path(args.keys))
    sources = [PcmSource.from_path(Path(p)) for p in args.wav]
    fmt = AudioFormat(args.format)
    started = time.perf_counter()
    archived = seal_into_archive(LocalStorage(Path(args.archive)), keyring, args.recording_id, sources,
                                 recorded_at=RECORDED, fmt=fmt,
                                 layout=("agent", "lead") if len(sources) == 2 else ("mixed",))
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "size": archived.size_bytes, "sealed_size": archived.path.stat().st_size,
            "sha256": archived.sha256, "uri": archived.storage_uri, **_peaks()}


def child_open(args: argparse.Namespace) -> dict[str, object]:
    reader = RecordingReader(Path(args.archive), Keyring.load(Path(args.keys)))
    started = time.perf_counter()
    total = 0
    with reader.open(FileRef(args.recording_id, args.uri, args.sha256)) as opened:
        opened.check()
        shape = representation(opened, AudioFormat(args.format) if args.format else None)
        for chunk in shape.chunks():
            total += len(chunk)
    return {"seconds": time.perf_counter() - started, "bytes": total, **_peaks()}


def _run_child(*arguments: str) -> dict[str, object]:
    output = subprocess.run([sys.executable, __file__, "--child", *arguments], check=True, capture_output=True,
                            text=True).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


# -- the benchmark -------------------------------------------------------------------------------
def _correlation(original: np.ndarray, decoded: np.ndarray, max_lag: int = 3) -> float:
    n = min(original.size, decoded.size) - 2 * max_lag
    a = original[max_lag : max_lag + n].astype(np.float64)
    return max(float(np.corrcoef(a, decoded[max_lag + lag : max_lag + lag + n].astype(np.float64))[0, 1])
               for lag in range(-max_lag, max_lag + 1))


def _wav_samples(data: bytes) -> np.ndarray:
    import io

    with wave.open(io.BytesIO(data)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def _mb(value: object) -> str:
    return f"{float(str(value)):6.2f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=3.0, help="the longest call (default 3 hours)")
    parser.add_argument("--sample-minutes", type=float, default=10.0, help="the call for size and fidelity")
    parser.add_argument("--ranges", type=int, default=300, help="Range reads to time")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = argparse.ArgumentParser()
        child.add_argument("op")
        child.add_argument("--wav", action="append", default=[])
        child.add_argument("--archive")
        child.add_argument("--keys")
        child.add_argument("--recording-id")
        child.add_argument("--format", default="")
        child.add_argument("--uri")
        child.add_argument("--sha256")
        options = child.parse_args(args.child)
        tracemalloc.start()  # the heap the operation allocates, imports excluded
        CHILD_PEAKS.start()
        result = child_seal(options) if options.op == "seal" else child_open(options)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="bench-recordings-") as scratch:
        work = Path(scratch)
        keys, archive = work / "keys", work / "archive"
        Keyring.load_or_create(keys)
        common = ["--archive", str(archive), "--keys", str(keys)]

        # 1-3: a sample call, mono and as two legs.
        sample_seconds = args.sample_minutes * 60
        mono, agent, lead = work / "mono.wav", work / "agent.wav", work / "lead.wav"
        write_call(mono, sample_seconds, seed=1)
        write_call(agent, sample_seconds, seed=2)
        write_call(lead, sample_seconds, seed=3)
        wav_bytes = mono.stat().st_size
        per_hour = 3600 / sample_seconds
        sealed_wav = _run_child("seal", "--wav", str(mono), "--recording-id", "sample-wav", "--format", "wav", *common)
        opus = _run_child("seal", "--wav", str(mono), "--recording-id", "sample-opus", "--format", "opus", *common)
        stereo = _run_child("seal", "--wav", str(agent), "--wav", str(lead), "--recording-id", "sample-stereo",
                            "--format", "opus", *common)
        print(f"1. bytes per talk hour ({args.sample_minutes:g}-minute call of speech, prompts and pauses)")
        rows = [("WAV 8 kHz 16-bit mono (baseline)", wav_bytes), ("archive: Opus mono 16 kbit/s", int(str(opus["size"]))),
                ("archive: Opus two channels 24 kbit/s", int(str(stereo["size"]))),
                ("WAV two channels (two legs)", 2 * wav_bytes)]
        for label, size in rows:
            hourly = size * per_hour
            decade = hourly * TALK_HOURS_PER_DECADE / 1e12
            print(f"   {label:<40} {hourly / 1e6:8.2f} MB/talk hour  {size / wav_bytes:6.3f} x WAV   "
                  f"50 agents x 6 h/day x 250 days x 10 years: {decade:7.2f} TB")
        sealing_overhead = int(str(opus["sealed_size"])) / int(str(opus["size"])) - 1
        print(f"   sealing adds {sealing_overhead * 100:.2f} % (a 28-byte nonce+tag per 64 KiB segment, the header)")

        reader = RecordingReader(archive, Keyring.load(keys))
        original = _wav_samples(mono.read_bytes())
        with reader.open(FileRef("sample-opus", str(opus["uri"]), str(opus["sha256"]))) as opened:
            decoded_bytes = b"".join(representation(opened, AudioFormat.WAV).chunks())
        decoded = _wav_samples(decoded_bytes)
        head = int(60 * RATE)
        print("2. fidelity of the Opus archive (decoded to WAV)")
        print(f"   waveform correlation with the original: {_correlation(original, decoded):.3f} (1.0 = identical)")
        print(f"   recording notice found, first minute: {notice_match(decoded_bytes[: 44 + 2 * head]):.2f} "
              f"vs {notice_match(mono.read_bytes()[: 44 + 2 * head]):.2f} on the WAV itself (absent: ~0.06)")

        minutes = sample_seconds / 60
        print("3. time per talk minute (one core, under nice)")
        print(f"   seal the WAV only (baseline):   {float(str(sealed_wav['seconds'])) / minutes * 1000:8.1f} ms")
        print(f"   transcode + seal, Opus mono:    {float(str(opus['seconds'])) / minutes * 1000:8.1f} ms  "
              f"({float(str(opus['seconds'])) / float(str(sealed_wav['seconds'])):.1f} x baseline; "
              f"{sample_seconds / float(str(opus['seconds'])):.0f} x real time)")
        print(f"   transcode + seal, two legs:     {float(str(stereo['seconds'])) / minutes * 1000:8.1f} ms")

        # 4: peak memory against the call's length.
        print("4. peak memory by call length: seal (transcode + seal) and open (check + read all); Python's max RSS\n"
          "   (imports included), the peak of what the operation allocated on Python's heap, and ffmpeg's max RSS")
        long_uri, long_sha, long_wav = "", "", work / "long.wav"
        for hours in sorted({10 / 60, 1.0, args.hours}):
            call = work / f"call-{hours:.3f}.wav"
            write_call(call, hours * 3600, seed=4)
            recording_id = f"call-{int(hours * 3600)}"
            sealed = _run_child("seal", "--wav", str(call), "--recording-id", recording_id, "--format", "opus",
                                *common)
            opened = _run_child("open", "--recording-id", recording_id, "--uri", str(sealed["uri"]), "--sha256",
                                str(sealed["sha256"]), *common)
            as_wav = _run_child("open", "--recording-id", recording_id, "--uri", str(sealed["uri"]), "--sha256",
                                str(sealed["sha256"]), "--format", "wav", *common)
            print(f"   {hours * 60:5.0f} min (WAV {call.stat().st_size / 1e6:6.1f} MB, sealed Opus "
                  f"{int(str(sealed['sealed_size'])) / 1e6:5.1f} MB, sealed in {float(str(sealed['seconds'])):5.1f} s)")
            for label, figures in (("seal", sealed), ("open", opened), ("open as WAV", as_wav)):
                print(f"      {label:<12} python RSS {_mb(figures['python_rss_mb'])}  heap peak "
                      f"{_mb(figures['python_heap_peak_mb'])}  ffmpeg RSS {_mb(figures['ffmpeg_rss_mb'])}")
            if hours == args.hours:
                long_uri, long_sha = str(sealed["uri"]), str(sealed["sha256"])
                call.replace(long_wav)
            else:
                call.unlink()

        # 5: Range reads on the longest call.
        rng = random.Random(7)
        size_range = 64 * 1024
        baseline, ranged = [], []
        with reader.open(FileRef(f"call-{int(args.hours * 3600)}", long_uri, long_sha)) as opened, \
                long_wav.open("rb") as plain:
            wav_size = os.fstat(plain.fileno()).st_size
            for _ in range(args.ranges):
                start = rng.randrange(0, opened.size - size_range)
                began = time.perf_counter()
                opened.check(start, start + size_range)
                data = b"".join(opened.iter_range(start, start + size_range))
                ranged.append(time.perf_counter() - began)
                assert len(data) == size_range
                offset = rng.randrange(0, wav_size - size_range)
                began = time.perf_counter()
                os.pread(plain.fileno(), size_range, offset)
                baseline.append(time.perf_counter() - began)
        print(f"5. Range read of 64 KiB in the {args.hours:g}-hour call ({args.ranges} reads, check + read, as the API)")
        for label, values in (("plain read of the WAV (baseline)", baseline), ("sealed archive, authenticated", ranged)):
            ordered = sorted(values)
            print(f"   {label:<36} p50 {statistics.median(values) * 1000:7.3f} ms  "
                  f"p99 {ordered[int(0.99 * (len(ordered) - 1))] * 1000:7.3f} ms")
        print(f"   ratio p50: {statistics.median(ranged) / statistics.median(baseline):.1f} x")


if __name__ == "__main__":
    main()
