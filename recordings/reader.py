"""Opening archived recordings for playback: whole, by byte range, as stored or converted.

Every format the archive ever wrote opens here: format 2 (segmented, envelope-encrypted),
format 1 (whole file sealed with a keyring key), and clear files (tests of the archive).
Opening checks before it hands out: a whole read first authenticates every segment and the
audio's SHA-256 against the row; a range read authenticates the segments it covers. Both
passes stream, so memory stays constant for a call of any length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from recordings.archive import data_key_key
from recordings.crypto import MAGIC as FORMAT1_MAGIC
from recordings.crypto import Keyring, RecordingCryptoError, open_sealed
from recordings.envelope import WrappedDataKey, unwrap_data_key
from recordings.segments import MAGIC as FORMAT2_MAGIC
from recordings.segments import SealedReader
from recordings.storage import LocalStorage, OutsideArchive, RecordingStorage, StoredObject
from recordings.transcode import (
    CONTENT_TYPES,
    AudioFormat,
    TranscodeError,
    close_quietly,
    decode,
    wav_info,
    wav_size,
)


class RecordingRef(Protocol):
    """What opening needs of a `recordings` row (`crm_bridge.store.Recording` is one)."""

    @property
    def recording_id(self) -> str: ...

    @property
    def storage_uri(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def format(self) -> str: ...


@dataclass(frozen=True)
class FileRef:
    """A recording known only by its file (the command line without the CRM): no checksum."""

    recording_id: str
    storage_uri: str
    sha256: str = ""
    format: str = ""


class RecordingUnavailable(Exception):
    """The recording's audio cannot be handed out; `error` is the API's reason code:
    `recording_unavailable` (missing or unreadable), `recording_integrity_failed` (damaged)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def _damaged(message: str) -> RecordingUnavailable:
    return RecordingUnavailable("recording_integrity_failed", message)


class _Bytes:
    """Random access over bytes in memory (format-1 and clear files, opened whole)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read_at(self, offset: int, size: int) -> bytes:
        return self._data[offset : offset + size]

    def close(self) -> None:
        pass


@dataclass
class OpenedRecording:
    """An archived recording, opened: what it holds and its stored bytes by range."""

    recording_id: str
    stored_format: AudioFormat
    channels: int
    rate: int
    frames: int | None
    size: int
    """Bytes of stored audio (what `iter_range` serves)."""
    _ranges: Callable[[int, int], Iterator[bytes]]
    _authenticate: Callable[[int, int], None]
    _close: Callable[[], None]
    expected_sha256: str = ""

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self._ranges(start, self.size if end is None else min(end, self.size))

    def check(self, start: int = 0, end: int | None = None) -> None:
        """Authenticate the bytes `start`..`end` (every segment they touch); for the whole
        recording also its SHA-256 against the row. `RecordingUnavailable` when damaged."""
        end = self.size if end is None else min(end, self.size)
        whole = start == 0 and end == self.size
        try:
            if whole and self.expected_sha256:
                digest = hashlib.sha256()
                for chunk in self._ranges(0, self.size):
                    digest.update(chunk)
                if digest.hexdigest() != self.expected_sha256.strip():
                    raise _damaged(f"{self.recording_id} does not match its checksum")
            else:
                self._authenticate(start, end)
        except RecordingCryptoError as error:
            raise _damaged(str(error)) from None
        except OSError as error:
            raise RecordingUnavailable("recording_unavailable", f"cannot read the archive: {error.strerror}") from None

    @property
    def seconds(self) -> float | None:
        return self.frames / self.rate if self.frames is not None and self.rate else None

    def close(self) -> None:
        self._close()

    def __enter__(self) -> OpenedRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Representation:
    """One way of handing a recording out: its stored bytes, or a conversion of them."""

    format: AudioFormat
    channels: int
    size: int | None
    """Known in advance for the stored bytes and for WAV; None for MP3/Opus conversions."""
    stored: bool
    _produce: Callable[[int, int | None], Iterator[bytes]] = field(repr=False)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self._produce(start, end)


def _slice(chunks: Iterator[bytes], start: int, end: int | None) -> Iterator[bytes]:
    """Bytes `start`..`end` of a stream that cannot seek (a conversion decoded from the start)."""
    position = 0
    try:
        for chunk in chunks:
            low, high = position, position + len(chunk)
            position = high
            if high <= start:
                continue
            piece = chunk[max(0, start - low) : len(chunk) if end is None else max(0, min(len(chunk), end - low))]
            if piece:
                yield piece
            if end is not None and position >= end:
                return
    finally:
        close_quietly(chunks)


def representation(opened: OpenedRecording, fmt: AudioFormat | None = None, *, mix_to_mono: bool = False) -> Representation:
    """The stored bytes when they are what is asked, else a conversion through ffmpeg."""
    target = fmt or opened.stored_format
    channels = 1 if mix_to_mono else opened.channels
    if target is opened.stored_format and channels == opened.channels:
        return Representation(target, channels, opened.size, True, lambda s, e: opened.iter_range(s, e))

    def convert(start: int, end: int | None) -> Iterator[bytes]:
        try:
            output = decode(lambda: opened.iter_range(), rate=opened.rate, channels=opened.channels,
                            frames=opened.frames, to=target, mix_to_mono=mix_to_mono)
        except TranscodeError as error:
            raise RecordingUnavailable("recording_unavailable", str(error)) from None
        return _slice(output, start, end)

    size = wav_size(channels, opened.frames) if target is AudioFormat.WAV and opened.frames is not None else None
    return Representation(target, channels, size, False, convert)


# How a clear (unsealed) file of each format begins: RIFF for WAV, an Ogg page for Opus (MP3
# is never archived, so it is not checked).
_CLEAR_MAGIC = {AudioFormat.WAV: b"RIFF", AudioFormat.OPUS: b"OggS"}


def _format_of(name: str) -> AudioFormat:
    parts = name.split(".")
    for part in reversed(parts[1:]):
        try:
            return AudioFormat(part)
        except ValueError:
            continue
    return AudioFormat.WAV


@dataclass(frozen=True)
class RecordingReader:
    """Opens archived recordings, only from inside the archive and only when they check out."""

    archive_dir: Path
    keyring: Keyring
    storage: RecordingStorage | None = None

    @property
    def store(self) -> RecordingStorage:
        return self.storage or LocalStorage(self.archive_dir)

    def key_of(self, recording: RecordingRef) -> str:
        try:
            return self.store.key_for_uri(recording.storage_uri)
        except OutsideArchive:
            # A row pointing elsewhere (edited by hand, or another host's archive) is not followed.
            raise RecordingUnavailable("recording_unavailable",
                                       f"{recording.recording_id} is not in this archive") from None

    def path_of(self, recording: RecordingRef) -> Path:
        """The local file of a recording (local storage only)."""
        store = self.store
        if not isinstance(store, LocalStorage):
            raise RecordingUnavailable("recording_unavailable", "the archive is not on this host's disk")
        return store.path(self.key_of(recording))

    def open(self, recording: RecordingRef) -> OpenedRecording:
        """Open for reading; `RecordingUnavailable` when missing, unreadable or damaged."""
        key = self.key_of(recording)
        try:
            stored = self.store.open(key)
        except FileNotFoundError:
            raise RecordingUnavailable("recording_unavailable",
                                       f"the archived file of {recording.recording_id} is missing") from None
        except OSError as error:
            raise RecordingUnavailable("recording_unavailable", f"cannot read the archive: {error.strerror}") from None
        try:
            return self._open(recording, key, stored)
        except RecordingUnavailable:
            stored.close()
            raise
        except RecordingCryptoError as error:
            stored.close()
            raise _damaged(str(error)) from None
        except OSError as error:
            stored.close()
            raise RecordingUnavailable("recording_unavailable", f"cannot read the archive: {error.strerror}") from None

    def _open(self, recording: RecordingRef, key: str, stored: StoredObject) -> OpenedRecording:
        head = stored.read_at(0, len(FORMAT2_MAGIC))
        recording_id = recording.recording_id
        if head == FORMAT2_MAGIC:
            try:
                wrapped = WrappedDataKey.from_bytes(self.store.get_small(data_key_key(key, recording_id)))
            except FileNotFoundError:
                raise RecordingUnavailable("recording_unavailable",
                                           f"the data key of {recording_id} is missing (purged?)") from None
            sealed = SealedReader(stored, unwrap_data_key(self.keyring, wrapped, recording_id), recording_id)
            meta = sealed.metadata

            def authenticate(start: int, end: int) -> None:
                for _ in sealed.iter_range(start, end):
                    pass

            return OpenedRecording(
                recording_id, AudioFormat(str(meta["format"])), int(str(meta["channels"])), int(str(meta["rate"])),
                int(str(meta["frames"])) if meta.get("frames") is not None else None, sealed.size,
                sealed.iter_range, authenticate, stored.close, recording.sha256,
            )
        # Format 1 and clear files are small (from before the segmented format): opened whole.
        blob = stored.read_at(0, stored.size)
        stored.close()
        clear = head != FORMAT1_MAGIC
        if not clear:
            blob = open_sealed(blob, self.keyring, recording_id)
        elif key.endswith(".sealed"):
            raise _damaged(f"{recording_id} is not a sealed recording")
        fmt = _format_of(key)
        if clear and not blob.startswith(_CLEAR_MAGIC.get(fmt, b"")):
            # A clear file is an old recording in its own format; anything else (a CSV given by
            # mistake to `dialer recording open`) was handed out as audio.
            raise _damaged(f"{recording_id} is neither a sealed recording nor {fmt.value.upper()} audio")
        memory = _Bytes(blob)
        rate, channels, frames = 8000, 1, None
        if fmt is AudioFormat.WAV:
            try:
                info = wav_info(blob[:4096], len(blob))
                rate, channels, frames = info.rate, info.channels, info.frames
            except TranscodeError:
                pass

        def ranges(start: int, end: int) -> Iterator[bytes]:
            yield memory.read_at(start, end - start)

        return OpenedRecording(recording_id, fmt, channels, rate, frames, len(blob), ranges, lambda s, e: None,
                               memory.close, recording.sha256)

    def read(self, recording: RecordingRef) -> bytes:
        """The whole stored audio, checked (small recordings and tests; playback streams)."""
        with self.open(recording) as opened:
            opened.check()
            return b"".join(opened.iter_range())


def open_file(path: Path, keyring: Keyring) -> OpenedRecording:
    """Open an archived recording by its file alone (no row: its tags are its only check)."""
    path = path.expanduser().resolve()
    reader = RecordingReader(path.parent, keyring, LocalStorage(path.parent))
    return reader.open(FileRef(path.name.split(".")[0], path.as_uri()))
