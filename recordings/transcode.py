"""Speech codec for the archive: Opus in Ogg through ffmpeg, streamed through pipes.

8 kHz 16-bit WAV costs about 58 MB per talk hour; Opus (RFC 6716) in Ogg (RFC 7845) at
16 kbit/s mono or 24 kbit/s for two channels costs 7-11 MB, and still carries the tones and
prompts tests and reviewers look for (see scripts/bench_recordings.py for the figures).

Why ffmpeg directly rather than pydub: pydub's `AudioSegment` decodes a whole file into memory
(a 3-hour call is 170 MB of samples) and exports through temporary files, while the archive must
transcode a call of any length in constant memory; pydub's `which()` also looks for `ffmpeg` in
the current directory first. The same ffmpeg (Debian's package, installed by
scripts/bootstrap.sh) is driven here with its input and output on pipes, so no plaintext audio
is written to disk on the way.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

CHUNK = 64 * 1024


class AudioFormat(StrEnum):
    """`recordings.format`: how the archived audio is encoded."""

    OPUS = "opus"
    """Opus in an Ogg container (RFC 7845): the archive format."""
    WAV = "wav"
    """16-bit PCM WAV: what Asterisk records, and what format-1 archives hold."""
    MP3 = "mp3"
    """For CRMs that play nothing else; served on request, never archived."""


CONTENT_TYPES: dict[AudioFormat, str] = {
    AudioFormat.OPUS: "audio/ogg",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.MP3: "audio/mpeg",
}

# Opus bitrates per channel count (RFC 6716 section 2.1.1: 8-12 kbit/s for narrowband speech,
# 16-20 kbit/s for wideband; Asterisk records 8 kHz narrowband).
OPUS_BITRATE = {1: 16_000, 2: 24_000}
MP3_BITRATE = {1: 32_000, 2: 48_000}


class TranscodeError(Exception):
    """ffmpeg is missing, or refused the audio (the message says which)."""


@dataclass(frozen=True)
class PcmInfo:
    """What a WAV file's header says, checked against the bytes there are."""

    rate: int
    channels: int
    frames: int
    data_offset: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0


def wav_info(head: bytes, total_size: int) -> PcmInfo:
    """Parse a 16-bit PCM WAV header from the file's first bytes (`head`, a few KB) and its
    size. A data chunk that claims more than the file holds (a recording cut short, or
    written to a pipe) is taken as running to the end of the file."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise TranscodeError("the recording is not a WAV file")
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
        body = offset + 8
        if chunk == b"fmt ":
            if body + 16 > len(head):
                break
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", head[body : body + 16])
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise TranscodeError("the WAV file has no format chunk before its data")
            tag, channels, rate, bits = fmt
            if tag not in (1, 0xFFFE) or bits != 16 or not 1 <= channels <= 2 or not 4000 <= rate <= 192_000:
                raise TranscodeError(f"unsupported WAV audio (format {tag}, {bits} bits, {channels} channels, {rate} Hz)")
            available = max(0, total_size - body)
            length = min(size, available)
            return PcmInfo(rate, channels, length // (2 * channels), body)
        offset = body + size + (size & 1)
    raise TranscodeError("the WAV header is damaged or longer than expected")


def wav_header(rate: int, channels: int, frames: int) -> bytes:
    data = frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
            + b"data" + struct.pack("<I", data))


@dataclass(frozen=True)
class PcmSource:
    """One mono or stereo WAV input: a file, or bytes already in memory (fetched over ARI)."""

    info: PcmInfo
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def from_path(cls, path: Path) -> PcmSource:
        with path.open("rb") as wav:
            head = wav.read(4096)
            size = os.fstat(wav.fileno()).st_size
        return cls(wav_info(head, size), path=path)

    @classmethod
    def from_bytes(cls, data: bytes) -> PcmSource:
        return cls(wav_info(data[:4096], len(data)), data=data)


def ffmpeg_binary() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        raise TranscodeError("ffmpeg is not installed (scripts/bootstrap.sh installs Debian's package)")
    return found


def _encoder_args(fmt: AudioFormat, channels: int) -> list[str]:
    if fmt is AudioFormat.OPUS:
        return ["-c:a", "libopus", "-b:a", str(OPUS_BITRATE[channels]), "-application", "voip",
                "-frame_duration", "20", "-f", "ogg"]
    if fmt is AudioFormat.MP3:
        return ["-c:a", "libmp3lame", "-b:a", str(MP3_BITRATE[channels]), "-f", "mp3"]
    return ["-c:a", "pcm_s16le", "-f", "s16le"]


class _Ffmpeg:
    """One ffmpeg process: feeders write its inputs from threads, the caller reads its output."""

    def __init__(self, args: Sequence[str], feeds: Sequence[tuple[int, Callable[[], Iterable[bytes]]]]) -> None:
        # Input pipes: fd 0 is stdin; further inputs are passed as extra descriptors (pipe:N).
        self._feed_ends: list[tuple[int, Callable[[], Iterable[bytes]]]] = []
        pass_fds: list[int] = []
        child_ends: list[int] = []
        stdin = subprocess.DEVNULL
        command = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", *args]
        substitutions: dict[str, str] = {}
        for number, produce in feeds:
            read_end, write_end = os.pipe()
            if number == 0:
                stdin = read_end
                substitutions[_input(0)] = "pipe:0"
            else:
                pass_fds.append(read_end)
                substitutions[_input(number)] = f"pipe:{read_end}"
            child_ends.append(read_end)
            self._feed_ends.append((write_end, produce))
        command = [substitutions.get(part, part) for part in command]
        if any(number == 0 for number, _ in feeds):
            command.remove("-nostdin")
        try:
            self.process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            pass_fds=pass_fds)
        except OSError as error:
            for end, _ in self._feed_ends:
                os.close(end)
            raise TranscodeError(f"cannot run ffmpeg: {error}") from None
        finally:
            for end in child_ends:
                os.close(end)
        self._errors: list[BaseException] = []
        self._stderr = b""
        self._threads = [threading.Thread(target=self._feed, args=(fd, produce), daemon=True, name="ffmpeg-feed")
                         for fd, produce in self._feed_ends]
        self._threads.append(threading.Thread(target=self._drain_stderr, daemon=True, name="ffmpeg-stderr"))
        for thread in self._threads:
            thread.start()

    def _feed(self, fd: int, produce: Callable[[], Iterable[bytes]]) -> None:
        try:
            with os.fdopen(fd, "wb") as pipe:
                for chunk in produce():
                    pipe.write(chunk)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading (it failed, or the reader went away): its exit says why
        except BaseException as error:  # re-raised in the reading thread
            self._errors.append(error)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr = (self._stderr + line)[-4000:]

    def output(self) -> Iterator[bytes]:
        assert self.process.stdout is not None
        try:
            while chunk := self.process.stdout.read(CHUNK):
                yield chunk
            code = self.process.wait()
            for thread in self._threads:
                thread.join()
            if self._errors:
                raise self._errors[0]
            if code != 0:
                raise TranscodeError(f"ffmpeg failed: {self._stderr.decode(errors='replace').strip()[-500:]}")
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()
            for thread in self._threads:
                thread.join(timeout=5)
            if self.process.stderr is not None:
                self.process.stderr.close()


def _file_chunks(path: Path, offset: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(offset)
        left = length
        while left > 0:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _pcm_feed(source: PcmSource) -> Callable[[], Iterable[bytes]]:
    """Raw PCM of the source (its data chunk only): ffmpeg is told the format explicitly, so a
    header with wrong sizes cannot cut the audio short."""
    info = source.info
    length = info.frames * info.channels * 2
    if source.path is not None:
        path = source.path
        return lambda: _file_chunks(path, info.data_offset, length)
    data = memoryview(source.data or b"")[info.data_offset : info.data_offset + length]
    return lambda: (bytes(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK))


def pcm_chunks(source: PcmSource) -> Iterator[bytes]:
    """The source's PCM samples (its data chunk), chunk by chunk."""
    yield from _pcm_feed(source)()


def _input(number: int) -> str:
    """A placeholder for input `number`, replaced by the pipe it is fed through."""
    return f"@input{number}"


def _raw_input(number: int, info: PcmInfo) -> list[str]:
    return ["-f", "s16le", "-ar", str(info.rate), "-ac", str(info.channels), "-i", _input(number)]


def encode(sources: Sequence[PcmSource], fmt: AudioFormat = AudioFormat.OPUS) -> Iterator[bytes]:
    """Encode one recording (one source), or two mono legs as one two-channel recording
    (first source on the left channel): the encoded bytes, chunk by chunk."""
    if not 1 <= len(sources) <= 2:
        raise ValueError("one source, or two legs")
    args: list[str] = []
    for number, source in enumerate(sources):
        args += _raw_input(number, source.info)
    if len(sources) == 1:
        channels = sources[0].info.channels
        args += ["-map", "0:a"]
    else:
        if any(source.info.channels != 1 for source in sources):
            raise TranscodeError("each leg must be a mono recording")
        channels = 2
        rate = max(source.info.rate for source in sources)
        frames = max(round(source.info.seconds * rate) for source in sources)
        # amerge stops at the shorter input: pad both legs to the longer one's length, so
        # neither side of the call loses its end.
        graph = ";".join(f"[{n}:a]aresample={rate},aformat=sample_fmts=s16:channel_layouts=mono,apad=whole_len={frames}[l{n}]"
                         for n in range(2))
        args += ["-filter_complex", f"{graph};[l0][l1]amerge=inputs=2[out]", "-map", "[out]", "-ac", "2"]
    args += [*_encoder_args(fmt, channels), "pipe:1"]
    return _run(args, [(n, _pcm_feed(source)) for n, source in enumerate(sources)])


def _run(args: Sequence[str], feeds: Sequence[tuple[int, Callable[[], Iterable[bytes]]]]) -> Iterator[bytes]:
    """ffmpeg's output; the process starts at the first read (never, if nothing is read) and is
    stopped when the reader closes the iterator early."""
    yield from _Ffmpeg(args, feeds).output()


def decode(encoded: Callable[[], Iterable[bytes]], *, rate: int, channels: int, frames: int | None,
           to: AudioFormat = AudioFormat.WAV, mix_to_mono: bool = False) -> Iterator[bytes]:
    """Turn archived audio (chunks from `encoded()`, in any format ffmpeg reads) into `to`.

    WAV comes out at `rate`, with a header written first; when `frames` is known the output
    has exactly that many frames, so its length is known before it is decoded (Content-Length)."""
    out_channels = 1 if mix_to_mono else channels
    # Mixed like Asterisk mixes a bridge: the two sides summed (saturating), not averaged, so a
    # mixed two-channel recording sounds like a mixed-mono one.
    mix = ["-af", "pan=mono|c0=c0+c1"] if mix_to_mono and channels == 2 else []
    args = ["-i", _input(0), *mix, "-ar", str(rate), "-ac", str(out_channels), *_encoder_args(to, out_channels), "pipe:1"]
    output = _run(args, [(0, encoded)])
    if to is not AudioFormat.WAV:
        return output
    return _exact_wav(output, rate, out_channels, frames)


def _exact_wav(pcm: Iterator[bytes], rate: int, channels: int, frames: int | None) -> Iterator[bytes]:
    if frames is None:
        # Unknown length: collect (only for short, old recordings without metadata).
        data = b"".join(pcm)
        yield wav_header(rate, channels, len(data) // (2 * channels)) + data
        return
    wanted = frames * channels * 2
    yield wav_header(rate, channels, frames)
    sent = 0
    try:
        for chunk in pcm:
            if sent >= wanted:
                continue  # drain: the decoder's last frames beyond the original length
            piece = chunk[: wanted - sent]
            sent += len(piece)
            yield piece
    finally:
        close_quietly(pcm)
    while sent < wanted:
        piece = bytes(min(CHUNK, wanted - sent))
        sent += len(piece)
        yield piece


def close_quietly(chunks: Iterable[bytes]) -> None:
    """Close a chunk generator (stopping its ffmpeg) when the reader stops early."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def wav_size(channels: int, frames: int) -> int:
    return 44 + frames * channels * 2
