"""Envelope encryption: one fresh data key per recording, kept only wrapped by a named KEK.

The wrapped data key is a small file beside the sealed audio (`<recording>.dek`, JSON), not in
the audio file, so that:
- rotating a KEK rewrites these small files only, never the audio (`recordings.lifecycle`);
- purging a recording destroys its data key: without it the audio, and any backup copy of it,
  is noise (crypto-shredding, NIST SP 800-88 Rev. 1 section 2.6 "cryptographic erase").
A backup of an old `.dek` file stays openable while its KEK lives; retiring a KEK after a
rotation makes those copies useless too.

The recording's id is bound to the wrapped key (associated data), so a `.dek` file copied onto
another recording does not open it.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field

from recordings.crypto import KekProvider, RecordingCryptoError
from recordings.segments import DATA_KEY_BYTES

_VERSION = 1


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def _context(recording_id: str) -> bytes:
    return b"dialer-recording-data-key\x00" + recording_id.encode() + b"\x00"


@dataclass(frozen=True)
class WrappedDataKey:
    """A recording's data key as stored: wrapped by the KEK `kek_id`."""

    recording_id: str
    kek_id: str
    wrapped: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "version": _VERSION, "recording_id": self.recording_id, "kek_id": self.kek_id,
            "wrapped": base64.b64encode(self.wrapped).decode(),
        }, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WrappedDataKey:
        try:
            doc = json.loads(data)
            if doc["version"] != _VERSION:
                raise RecordingCryptoError(f"unknown data key file version {doc['version']!r}")
            return cls(str(doc["recording_id"]), str(doc["kek_id"]), base64.b64decode(doc["wrapped"], validate=True))
        except (ValueError, KeyError, TypeError):
            raise RecordingCryptoError("the recording's data key file is damaged") from None


def wrap_data_key(provider: KekProvider, recording_id: str, data_key: bytes) -> WrappedDataKey:
    kek_id, wrapped = provider.wrap(data_key, _context(recording_id))
    return WrappedDataKey(recording_id, kek_id, wrapped)


def unwrap_data_key(provider: KekProvider, wrapped: WrappedDataKey, recording_id: str) -> bytes:
    if wrapped.recording_id != recording_id:
        raise RecordingCryptoError(f"the data key file belongs to {wrapped.recording_id}, not {recording_id}")
    key = provider.unwrap(wrapped.kek_id, wrapped.wrapped, _context(recording_id))
    if len(key) != DATA_KEY_BYTES:
        raise RecordingCryptoError("the recording's data key has the wrong length")
    return key


def rewrap_data_key(provider: KekProvider, wrapped: WrappedDataKey) -> WrappedDataKey:
    """The same data key wrapped by the provider's current KEK (KEK rotation)."""
    return wrap_data_key(provider, wrapped.recording_id, unwrap_data_key(provider, wrapped, wrapped.recording_id))
