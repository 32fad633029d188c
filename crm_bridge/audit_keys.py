"""The Ed25519 key that signs the audit trail's checkpoints and the evidence packets' manifests.

Held like the recordings keys: one file per key (`<key id>.ed25519`, the 32-byte private key,
mode 0600) in a folder of its own (mode 0700), outside the database, so someone who can edit
PostgreSQL cannot re-sign a rewritten chain. The public key is what a verifier needs, and
nothing else: publish its fingerprint (`key_id`) where a court or an auditor can compare it.

Ed25519 (RFC 8032) through `cryptography`: deterministic signatures, 32-byte keys, no
parameters to get wrong.

A missing key is created only while no chain has been signed. Once a checkpoint exists, a missing
key means the key was lost or the dialer points at the wrong folder; making a new one silently
would leave every earlier checkpoint signed by a key nobody holds, so it is refused
(`AuditKeyError`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_SUFFIX = ".ed25519"
PUBLIC_KEY_BYTES = 32


class AuditKeyError(Exception):
    """The audit signing key cannot be used; the message says what to do."""


def key_id_of(public_key: bytes) -> str:
    """The key's fingerprint: the first 32 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(b"dialer-audit-key" + public_key).hexdigest()[:32]


@dataclass(frozen=True)
class AuditSigningKey:
    """The private key (never in `repr`), its public half and its fingerprint."""

    private: Ed25519PrivateKey = field(repr=False)

    @property
    def public_key(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, message: bytes) -> str:
        """The base64 Ed25519 signature of `message`."""
        return base64.b64encode(self.private.sign(message)).decode()

    @classmethod
    def generate(cls) -> AuditSigningKey:
        return cls(Ed25519PrivateKey.generate())

    # --- the key folder ------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> AuditSigningKey:
        """The key in `directory`; `AuditKeyError` when there is none, several, or it is exposed."""
        files = _key_files(directory)
        if not files:
            raise AuditKeyError(
                f"no audit signing key in {directory}: restore it from your backup, or set DIALER_AUDIT_KEYS_DIR")
        if len(files) > 1:
            names = ", ".join(path.name for path in files)
            raise AuditKeyError(f"{directory} holds several audit keys ({names}): keep exactly one")
        path = files[0]
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise AuditKeyError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")
        raw = path.read_bytes()
        if len(raw) != 32:
            raise AuditKeyError(f"{path} is not a 32-byte Ed25519 private key")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def load_or_create(cls, directory: Path, *, chain_signed: bool) -> AuditSigningKey:
        """The key in `directory`, created (0600 in a 0700 folder) only when none exists and no
        chain was signed yet."""
        if _key_files(directory):
            return cls.load(directory)
        if chain_signed:
            raise AuditKeyError(
                f"the audit signing key is missing from {directory} while the audit trail is already signed: "
                "restore the key from your backup (or point DIALER_AUDIT_KEYS_DIR at it); a new key would leave "
                "every earlier checkpoint signed by a key nobody holds")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        key = cls.generate()
        raw = key.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
        path = directory / f"{key.key_id}{KEY_SUFFIX}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        return key


def _key_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{KEY_SUFFIX}")) if directory.is_dir() else []


# --- verifying (public key only) -----------------------------------------------------------------

def public_key_from_text(text: str | bytes) -> bytes:
    """A raw 32-byte Ed25519 public key from a PEM file's text or from base64."""
    data = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" in data:
        try:
            loaded = serialization.load_pem_public_key(data)
        except ValueError as error:
            raise AuditKeyError(f"not a PEM public key: {error}") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise AuditKeyError("the PEM public key is not an Ed25519 key")
        return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        raise AuditKeyError("the public key is neither PEM nor base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise AuditKeyError(f"an Ed25519 public key has {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
    return raw


def public_pem(public_key: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def signature_valid(public_key: bytes, message: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is `public_key`'s Ed25519 signature of `message`."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
