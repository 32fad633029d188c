"""The audit signing key: kept 0600 in a 0700 folder, never silently replaced once a trail
exists, refused when others can read it; signatures check with the public key alone."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from crm_bridge.audit_keys import AuditKeyError, AuditSigningKey, public_key_from_text, signature_valid

pytestmark = pytest.mark.timeout(30)


def test_a_new_key_is_private_and_the_same_key_loads_again(tmp_path: Path) -> None:
    folder = tmp_path / "audit-keys"
    key = AuditSigningKey.load_or_create(folder, chain_signed=False)
    (path,) = folder.iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name == f"{key.key_id}.ed25519" and repr(key) == "AuditSigningKey()"  # never the secret
    assert AuditSigningKey.load_or_create(folder, chain_signed=True).key_id == key.key_id


def test_a_missing_key_is_refused_once_the_trail_is_signed(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match=r"missing .* while the audit trail is already signed"):
        AuditSigningKey.load_or_create(tmp_path / "audit-keys", chain_signed=True)
    assert not (tmp_path / "audit-keys").exists()


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "audit-keys"
    key = AuditSigningKey.load_or_create(folder, chain_signed=False)
    (folder / f"{key.key_id}.ed25519").chmod(0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        AuditSigningKey.load(folder)


def test_signatures_check_with_the_public_key_alone(tmp_path: Path) -> None:
    key = AuditSigningKey.generate()
    signature = key.sign(b"statement")
    public = public_key_from_text(key.public_pem())
    assert signature_valid(public, b"statement", signature)
    assert not signature_valid(public, b"statement!", signature)
    assert not signature_valid(AuditSigningKey.generate().public_key, b"statement", signature)
    assert public_key_from_text(key.public_key_b64) == public
    with pytest.raises(AuditKeyError):
        public_key_from_text("not a key")
