"""Sealed recordings, format 2: chunked authenticated encryption that streams and seeks.

A 3-hour call must be sealed and opened in constant memory, and a byte range (HTTP Range)
served without decrypting the whole file, so the audio is cut into fixed-size segments, each
sealed on its own with AES-256-GCM (NIST SP 800-38D) under the recording's data key:

    header   = MAGIC | segment size (u32) | metadata length (u16) | metadata (JSON)
    segment  = nonce (12 bytes) | ciphertext | tag (16 bytes)

Every segment but the last holds exactly `segment size` bytes of audio; the last holds 0 to
`segment size` (0 only when the whole recording is empty). Each segment's associated data is

    SHA-256(header) | recording id | segment index (u64) | last flag (u8)

so a segment moved to another position, another file or another recording fails its tag,
the header's metadata cannot be changed, and a file cut at a segment boundary fails too (the
segment that becomes last was sealed with the flag 0). This is the construction of Hoang,
Reyhanitabar, Rogaway and Vizar ("Online authenticated-encryption and its nonce-reuse
misuse-resistance", CRYPTO 2015) as used by Tink's streaming AEAD, with a random nonce per
segment instead of a derived one: a fresh 256-bit key per recording and at most a few
thousand segments per key keep random 96-bit nonces far from any collision (SP 800-38D 8.3).
We write our own rather than use Tink because the Python Tink package wants protobuf key
sets and its own key management, while the key hierarchy here is ours (`recordings.envelope`).

The metadata is authenticated but not encrypted: it says how to decode the audio (format,
channels and their order, sample rate, frame count), none of it about the call's content.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recordings.crypto import RecordingCryptoError

MAGIC = b"DLRREC2\n"
SEGMENT_SIZE = 64 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES
DATA_KEY_BYTES = 32
_FIXED = struct.Struct(">IH")
_MAX_METADATA = 4096


class SealedDamaged(RecordingCryptoError):
    """A sealed recording fails its checks: tampered, truncated, or opened with the wrong key."""


def _associated_data(header_digest: bytes, recording_id: bytes, index: int, last: bool) -> bytes:
    return header_digest + recording_id + struct.pack(">QB", index, 1 if last else 0)


def encode_header(metadata: dict[str, object], segment_size: int = SEGMENT_SIZE) -> bytes:
    meta = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
    if len(meta) > _MAX_METADATA:
        raise ValueError("recording metadata is too large")
    if not 1024 <= segment_size <= 1 << 24:
        raise ValueError("segment size must be from 1 KiB to 16 MiB")
    return MAGIC + _FIXED.pack(segment_size, len(meta)) + meta


@dataclass(frozen=True)
class Header:
    segment_size: int
    metadata: dict[str, object]
    raw: bytes

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


def read_header(source: BinaryIO) -> Header:
    """Parse the header at the start of `source` (left positioned after it)."""
    start = source.read(len(MAGIC) + _FIXED.size)
    if len(start) < len(MAGIC) + _FIXED.size or not start.startswith(MAGIC):
        raise SealedDamaged("not a sealed recording (format 2)")
    segment_size, meta_length = _FIXED.unpack(start[len(MAGIC) :])
    if not 1024 <= segment_size <= 1 << 24 or meta_length > _MAX_METADATA:
        raise SealedDamaged("the sealed recording's header is damaged")
    meta = source.read(meta_length)
    try:
        metadata = json.loads(meta)
    except ValueError:
        raise SealedDamaged("the sealed recording's header is damaged") from None
    if len(meta) != meta_length or not isinstance(metadata, dict):
        raise SealedDamaged("the sealed recording's header is damaged")
    return Header(segment_size, metadata, start + meta)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class SealingWriter:
    """Seals a stream of audio bytes segment by segment into `sink` (constant memory).

    `write()` as often as needed, then `close()` once: it seals the last segment. A writer
    not closed leaves a file that fails to open (its last segment is missing), never one
    that opens to a silently shortened recording.
    """

    def __init__(self, sink: _Sink, data_key: bytes, recording_id: str, metadata: dict[str, object],
                 segment_size: int = SEGMENT_SIZE) -> None:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError("a data key is 32 bytes")
        self._sink = sink
        self._aead = AESGCM(data_key)
        self._recording = recording_id.encode()
        header = encode_header(metadata, segment_size)
        self._digest = hashlib.sha256(header).digest()
        self._segment_size = segment_size
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        self.plaintext_bytes = 0
        self.sealed_bytes = len(header)
        self.plaintext_sha256 = hashlib.sha256()
        sink.write(header)

    def _seal(self, data: bytes, last: bool) -> None:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, data, _associated_data(self._digest, self._recording, self._index, last))
        self._sink.write(nonce + sealed)
        self.sealed_bytes += len(nonce) + len(sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("write to a closed sealing writer")
        self.plaintext_bytes += len(data)
        self.plaintext_sha256.update(data)
        self._buffer += data
        # Hold back one full segment: only close() knows which segment is the last.
        while len(self._buffer) > self._segment_size:
            self._seal(bytes(self._buffer[: self._segment_size]), last=False)
            del self._buffer[: self._segment_size]

    def close(self) -> None:
        if not self._closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True


class RandomAccess(Protocol):
    """What opening needs from a stored file: positioned reads and its size."""

    def read_at(self, offset: int, size: int) -> bytes: ...

    @property
    def size(self) -> int: ...


class SealedReader:
    """Opens a format-2 sealed recording: its metadata, its length, any byte range of it.

    Each segment read is authenticated before any byte of it is returned.
    """

    def __init__(self, source: RandomAccess, data_key: bytes, recording_id: str) -> None:
        self._source = source
        self._aead = AESGCM(data_key)
        self._recording = recording_id.encode()
        head = source.read_at(0, min(source.size, len(MAGIC) + _FIXED.size + _MAX_METADATA))
        self.header = read_header(io.BytesIO(head))
        self._body_start = len(self.header.raw)
        self._stride = self.header.segment_size + OVERHEAD
        body = source.size - self._body_start
        if body < OVERHEAD:
            raise SealedDamaged("the sealed recording is truncated")
        self.segments = -(-body // self._stride)
        last_length = body - (self.segments - 1) * self._stride - OVERHEAD
        if last_length < 0 or (last_length == 0 and self.segments > 1):
            raise SealedDamaged("the sealed recording is truncated")
        self.size = (self.segments - 1) * self.header.segment_size + last_length
        """Bytes of audio (the plaintext)."""

    @property
    def metadata(self) -> dict[str, object]:
        return self.header.metadata

    def segment(self, index: int) -> bytes:
        """The audio of segment `index`, authenticated."""
        if not 0 <= index < self.segments:
            raise IndexError(index)
        last = index == self.segments - 1
        length = (self.size - index * self.header.segment_size) if last else self.header.segment_size
        blob = self._source.read_at(self._body_start + index * self._stride, length + OVERHEAD)
        if len(blob) != length + OVERHEAD:
            raise SealedDamaged("the sealed recording is truncated")
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                      _associated_data(self.header.digest, self._recording, index, last))
        except InvalidTag:
            raise SealedDamaged(
                f"segment {index} of recording {self._recording.decode()} fails its integrity check "
                "(tampered, truncated, or not this recording's)"
            ) from None

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Audio bytes `start` to `end` (exclusive; None: to the end), segment by segment."""
        end = self.size if end is None else min(end, self.size)
        if start < 0 or start > end:
            raise ValueError("bad range")
        if start == end:
            if self.size == 0:
                self.segment(0)  # an empty recording still proves it is whole
            return
        size = self.header.segment_size
        for index in range(start // size, (end - 1) // size + 1):
            data = self.segment(index)
            base = index * size
            yield data[max(0, start - base) : min(size, end - base)]

    def verify(self) -> str:
        """Authenticate every segment; returns the SHA-256 (hex) of the whole audio."""
        digest = hashlib.sha256()
        for index in range(self.segments):
            digest.update(self.segment(index))
        return digest.hexdigest()
