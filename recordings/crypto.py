"""Keys of the recordings archive (45 CFR 164.312(a)(2)(iv); NIST SP 800-111, SP 800-57).

Two levels (envelope encryption, `recordings.envelope`): each recording is sealed under its own
random data key, and that data key is kept only wrapped by a key-encryption key (KEK) named by
id. The KEKs live behind `KekProvider`; `Keyring` is the default provider, a folder of local
key files (one 32-byte `*.key` file each, 0600, in a 0700 folder). A KMS provider implements
the same three methods (see docs/recordings.md).

Format 1 (before envelope encryption) sealed a whole file with a keyring key itself:
`MAGIC | key id (16 bytes) | nonce (12 bytes) | ciphertext+tag`, the recording's name bound as
associated data. Those files stay readable (`open_sealed`) for their whole retention; they are
why a KEK still sealing format-1 files is never retired.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"DLRREC1\n"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 16
CURRENT_FILE = "CURRENT"
"""Names the key that wraps new data keys (written by rotation); without it, the newest file."""
ARCHIVE_KEYS_FILE = "archive-keys.json"
"""In the archive's root: the ids of the KEKs its recordings need (checked at start)."""


class RecordingCryptoError(Exception):
    """A sealed recording cannot be opened (unknown key, tampered or truncated file)."""


class RecordingKeysMissing(RecordingCryptoError):
    """The archive holds recordings sealed under keys this keyring does not have."""


class KekProvider(Protocol):
    """Where key-encryption keys live: wraps and unwraps data keys, never hands out a KEK."""

    @property
    def current_kek_id(self) -> str:
        """The KEK that wraps new data keys."""
        ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """`(kek id, wrapped key)`; `context` is bound to it (unwrapping needs the same)."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        """The data key; `RecordingCryptoError` when the KEK is unknown or the context differs."""
        ...


@dataclass(frozen=True)
class RecordingKey:
    key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"dialer-recording-key" + self.key).hexdigest()[:32]

    @classmethod
    def generate(cls) -> RecordingKey:
        return cls(secrets.token_bytes(KEY_BYTES))


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` (0600) with `data`, durably, never replacing an existing file."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _replace_private(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    _write_private(partial, data)
    partial.replace(path)


class Keyring:
    """The local-file KEK provider: the current key (wraps new data keys) and every older one.

    Its keys also open format-1 files, which were sealed with a keyring key directly.
    """

    def __init__(self, current: RecordingKey, older: tuple[RecordingKey, ...] = (),
                 directory: Path | None = None) -> None:
        self.current = current
        self.directory = directory
        self._by_id = {key.key_id: key for key in (current, *older)}

    def get(self, key_id: str) -> RecordingKey:
        try:
            return self._by_id[key_id]
        except KeyError:
            raise RecordingCryptoError(f"no key {key_id} in the keyring") from None

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    @property
    def keys(self) -> tuple[RecordingKey, ...]:
        return tuple(self._by_id.values())

    # -- KekProvider -----------------------------------------------------------------------
    @property
    def current_kek_id(self) -> str:
        return self.current.key_id

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        self._follow_rotation()
        nonce = secrets.token_bytes(NONCE_BYTES)
        kek = self.current
        return kek.key_id, nonce + AESGCM(kek.key).encrypt(nonce, data_key, context + kek.key_id.encode())

    def _follow_rotation(self) -> None:
        """A rotation by another process (`dialer recording rotate-key`) moves the CURRENT
        pointer: a running dialer wraps its next data key with the new KEK, not the old one."""
        if self.directory is None:
            return
        try:
            wanted = (self.directory / CURRENT_FILE).read_text().strip()
        except OSError:
            return
        if wanted and wanted != self.current.key_id:
            fresh = Keyring.load(self.directory)
            self.current = fresh.current
            self._by_id.update({key.key_id: key for key in fresh.keys})

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        if kek_id not in self._by_id:
            self._follow_rotation()
        kek = self.get(kek_id)
        try:
            return AESGCM(kek.key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context + kek_id.encode())
        except InvalidTag:
            raise RecordingCryptoError("a wrapped data key does not open (damaged, or not this recording's)") from None

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path) -> Keyring:
        """The keys in `directory` (one `*.key` file each); refuses an empty or missing folder."""
        files = _key_files(directory)
        if not files:
            raise RecordingKeysMissing(f"no recording keys in {directory} (set DIALER_RECORDING_KEYS_DIR)")
        return cls._from_files(directory, files)

    @classmethod
    def load_or_create(cls, directory: Path) -> Keyring:
        """Keys kept one per file (`*.key`, 0600) in `directory` (0700); created if none.

        Prefer `for_archive`, which refuses to create a key while an archive needs old ones.
        """
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if directory.stat().st_mode & 0o777 != 0o700:
            os.chmod(directory, 0o700)  # a folder made before this rule (0755)
        files = _key_files(directory)
        if not files:
            key = RecordingKey.generate()
            path = directory / f"{key.key_id}.key"
            _write_private(path, key.key)
            files = [path]
        return cls._from_files(directory, files)

    @classmethod
    def for_archive(cls, directory: Path, archive_dir: Path) -> Keyring:
        """The keyring for the archive in `archive_dir`: created only while the archive holds
        no sealed recording. A mistyped DIALER_RECORDING_KEYS_DIR would otherwise create a new
        key silently, and every recording sealed before would stay unreadable."""
        needed = archive_key_ids(archive_dir)
        if needed is None:
            return cls.load_or_create(directory)
        files = _key_files(directory)
        if not files:
            raise RecordingKeysMissing(
                f"the recordings archive {archive_dir} holds sealed recordings but there are no keys in {directory}: "
                "set DIALER_RECORDING_KEYS_DIR to the folder holding key "
                f"{', '.join(sorted(needed)) or '(see the archive)'}"
            )
        keyring = cls._from_files(directory, files)
        missing = sorted(needed - keyring.key_ids)
        if missing:
            raise RecordingKeysMissing(
                f"the recordings archive {archive_dir} needs key(s) {', '.join(missing)}, "
                f"which are not in {directory}: set DIALER_RECORDING_KEYS_DIR to the right folder"
            )
        return keyring

    @classmethod
    def _from_files(cls, directory: Path, files: list[Path]) -> Keyring:
        keys = [RecordingKey(path.read_bytes()) for path in files]
        for path, key in zip(files, keys, strict=True):
            if len(key.key) != KEY_BYTES:
                raise RecordingCryptoError(f"{path} is not a {KEY_BYTES}-byte key")
        current = keys[-1]
        pointer = directory / CURRENT_FILE
        if pointer.is_file():
            wanted = pointer.read_text().strip()
            chosen = [key for key in keys if key.key_id == wanted]
            if not chosen:
                raise RecordingKeysMissing(f"{pointer} names key {wanted}, which is not in {directory}")
            current = chosen[0]
        return cls(current, tuple(key for key in keys if key is not current), directory)

    def rotated(self) -> Keyring:
        """A new current key, written to this keyring's folder (0600), older keys kept."""
        if self.directory is None:
            raise RecordingCryptoError("this keyring has no folder to add a key to")
        key = RecordingKey.generate()
        _write_private(self.directory / f"{key.key_id}.key", key.key)
        _replace_private(self.directory / CURRENT_FILE, key.key_id.encode() + b"\n")
        return Keyring(key, tuple(self._by_id.values()), self.directory)

    def retire(self, key_ids: Iterable[str]) -> Keyring:
        """Move the files of keys no longer needed (never the current one) to `retired/`, where
        they are no longer loaded. Destroying them is a deliberate, separate step (it makes old
        backups of purged recordings' data keys unreadable; docs/recordings.md)."""
        if self.directory is None:
            raise RecordingCryptoError("this keyring has no folder")
        gone = set(key_ids) - {self.current.key_id}
        retired = self.directory / "retired"
        if gone:
            retired.mkdir(mode=0o700, exist_ok=True)
        for key_id in gone:
            source = self.directory / f"{key_id}.key"
            if source.exists():
                source.replace(retired / source.name)
        return Keyring(self.current, tuple(k for i, k in self._by_id.items() if i not in gone and k is not self.current),
                       self.directory)


def _key_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.key"), key=lambda path: (path.stat().st_mtime_ns, path.name))


def archive_key_ids(archive_dir: Path) -> frozenset[str] | None:
    """The KEK ids an archive's recordings need, or None when it holds no sealed recording.

    Read from the archive's `archive-keys.json`; an archive from before that file is
    recognised by its first sealed file (format 1 names its key in its header).
    """
    listed = archive_dir / ARCHIVE_KEYS_FILE
    if listed.is_file():
        try:
            ids = json.loads(listed.read_text())["kek_ids"]
        except (ValueError, KeyError, TypeError):
            raise RecordingCryptoError(f"{listed} is damaged") from None
        return frozenset(str(i) for i in ids)
    if not archive_dir.is_dir():
        return None
    for path in archive_dir.rglob("*.dek"):
        try:
            return frozenset({str(json.loads(path.read_bytes())["kek_id"])})
        except (ValueError, KeyError, TypeError):
            return frozenset()
    for path in archive_dir.rglob("*.sealed"):
        with path.open("rb") as sealed:
            head = sealed.read(len(MAGIC) + KEY_ID_BYTES)
        if head.startswith(MAGIC) and len(head) == len(MAGIC) + KEY_ID_BYTES:
            return frozenset({head[len(MAGIC) :].hex()})
        return frozenset()
    return None


def record_archive_key_ids(archive_dir: Path, kek_ids: Iterable[str], *, replace: bool = False) -> None:
    """Add `kek_ids` to the archive's list of needed keys (or set it, with `replace`)."""
    archive_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = set() if replace else set(archive_key_ids(archive_dir) or ())
    wanted = current | set(kek_ids)
    listed = archive_dir / ARCHIVE_KEYS_FILE
    if listed.is_file() and not replace and wanted == current:
        return
    _replace_private(listed, json.dumps({"kek_ids": sorted(wanted)}, indent=1).encode())


def seal(data: bytes, key: RecordingKey, name: str) -> bytes:
    """Format 1 (kept for tests of reading old files): the whole file under a keyring key."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(key.key).encrypt(nonce, data, name.encode())
    return MAGIC + bytes.fromhex(key.key_id) + nonce + ciphertext


def sealed_key_id(blob: bytes) -> str:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES + 16:
        raise RecordingCryptoError("not a sealed recording")
    return blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()


def open_sealed(blob: bytes, keyring: Keyring, name: str) -> bytes:
    """Open a format-1 sealed file."""
    key = keyring.get(sealed_key_id(blob))
    start = len(MAGIC) + KEY_ID_BYTES
    nonce, ciphertext = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
    try:
        return AESGCM(key.key).decrypt(nonce, ciphertext, name.encode())
    except InvalidTag:
        raise RecordingCryptoError(f"recording {name} fails its integrity check (tampered or wrong name)") from None
