"""Recordings are encrypted at rest with AES-256-GCM (45 CFR 164.312(a)(2)(iv); NIST SP 800-111).

A sealed file is `MAGIC | key id (16 bytes) | nonce (12 bytes) | ciphertext+tag`; the key id
names the key in the keyring, so keys can be rotated while old recordings stay readable for
their 10-year retention. The recording's own name is bound as associated data, so a file
renamed onto another call's recording does not decrypt.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"DLRREC1\n"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 16


class RecordingCryptoError(Exception):
    """A sealed recording cannot be opened (unknown key, tampered or truncated file)."""


@dataclass(frozen=True)
class RecordingKey:
    key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"dialer-recording-key" + self.key).hexdigest()[:32]

    @classmethod
    def generate(cls) -> RecordingKey:
        return cls(secrets.token_bytes(KEY_BYTES))


class Keyring:
    """The current key (used to seal) and every older one (used to open)."""

    def __init__(self, current: RecordingKey, older: tuple[RecordingKey, ...] = ()) -> None:
        self.current = current
        self._by_id = {key.key_id: key for key in (current, *older)}

    def get(self, key_id: str) -> RecordingKey:
        try:
            return self._by_id[key_id]
        except KeyError:
            raise RecordingCryptoError(f"no key {key_id} in the keyring") from None

    @classmethod
    def load(cls, directory: Path) -> Keyring:
        """The keys in `directory` (one `*.key` file each); the newest seals."""
        files = sorted(directory.glob("*.key"), key=lambda path: path.stat().st_mtime) if directory.is_dir() else []
        if not files:
            raise RecordingCryptoError(f"no recording keys in {directory} (set DIALER_RECORDING_KEYS_DIR)")
        return cls._from_files(files)

    @classmethod
    def load_or_create(cls, directory: Path) -> Keyring:
        """Keys kept one per file (`*.key`, 0600) in `directory`; the newest seals. Created if none."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = sorted(directory.glob("*.key"), key=lambda path: path.stat().st_mtime)
        if not files:
            key = RecordingKey.generate()
            path = directory / f"{key.key_id}.key"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(key.key)
            files = [path]
        return cls._from_files(files)

    @classmethod
    def _from_files(cls, files: list[Path]) -> Keyring:
        keys = [RecordingKey(path.read_bytes()) for path in files]
        for path, key in zip(files, keys, strict=True):
            if len(key.key) != KEY_BYTES:
                raise RecordingCryptoError(f"{path} is not a {KEY_BYTES}-byte key")
        return cls(keys[-1], tuple(keys[:-1]))


def seal(data: bytes, key: RecordingKey, name: str) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(key.key).encrypt(nonce, data, name.encode())
    return MAGIC + bytes.fromhex(key.key_id) + nonce + ciphertext


def sealed_key_id(blob: bytes) -> str:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES + 16:
        raise RecordingCryptoError("not a sealed recording")
    return blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()


def open_sealed(blob: bytes, keyring: Keyring, name: str) -> bytes:
    key = keyring.get(sealed_key_id(blob))
    start = len(MAGIC) + KEY_ID_BYTES
    nonce, ciphertext = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
    try:
        return AESGCM(key.key).decrypt(nonce, ciphertext, name.encode())
    except InvalidTag:
        raise RecordingCryptoError(f"recording {name} fails its integrity check (tampered or wrong name)") from None
