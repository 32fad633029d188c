"""Recordings sealed at rest: round trip, key rotation, and every way opening must fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.crypto import Keyring, RecordingCryptoError, RecordingKey, open_sealed, seal

AUDIO = bytes(range(256)) * 40


def test_a_sealed_recording_opens_with_its_name_and_hides_the_audio() -> None:
    keyring = Keyring(RecordingKey.generate())
    blob = seal(AUDIO, keyring.current, "call-1-recording")
    assert AUDIO[:64] not in blob
    assert open_sealed(blob, keyring, "call-1-recording") == AUDIO


def test_a_rotated_keyring_still_opens_old_recordings() -> None:
    old = RecordingKey.generate()
    blob = seal(AUDIO, old, "call-1-recording")
    rotated = Keyring(RecordingKey.generate(), (old,))
    assert open_sealed(blob, rotated, "call-1-recording") == AUDIO
    assert open_sealed(seal(AUDIO, rotated.current, "x"), rotated, "x") == AUDIO


@pytest.mark.parametrize("damage", ["renamed", "flipped", "truncated", "unknown_key", "not_sealed"])
def test_opening_fails_loudly_rather_than_returning_wrong_audio(damage: str) -> None:
    keyring = Keyring(RecordingKey.generate())
    blob = seal(AUDIO, keyring.current, "call-1-recording")
    name = "call-1-recording"
    if damage == "renamed":
        name = "call-2-recording"
    elif damage == "flipped":
        blob = blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:]
    elif damage == "truncated":
        blob = blob[:40]
    elif damage == "unknown_key":
        keyring = Keyring(RecordingKey.generate())
    else:
        blob = AUDIO
    with pytest.raises(RecordingCryptoError):
        open_sealed(blob, keyring, name)


def test_the_keyring_is_created_once_with_private_files(tmp_path: Path) -> None:
    first = Keyring.load_or_create(tmp_path / "keys")
    again = Keyring.load_or_create(tmp_path / "keys")
    assert first.current.key_id == again.current.key_id
    (key_file,) = (tmp_path / "keys").glob("*.key")
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_opening_from_the_command_line_needs_the_keyring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    keys = tmp_path / "keys"
    keyring = Keyring.load_or_create(keys)
    sealed = tmp_path / "call-9-recording.wav.sealed"
    sealed.write_bytes(seal(AUDIO, keyring.current, "call-9-recording"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIALER_RECORDING_KEYS_DIR", str(keys))
        assert main(["recording", "open", str(sealed), "--out", str(tmp_path / "out.wav")]) == 0
        assert (tmp_path / "out.wav").read_bytes() == AUDIO
        assert main(["recording", "open", sealed.as_uri(), "--out", str(tmp_path / "uri.wav")]) == 0
        assert (tmp_path / "uri.wav").read_bytes() == AUDIO
        patch.setenv("DIALER_RECORDING_KEYS_DIR", str(tmp_path / "elsewhere"))
        assert main(["recording", "open", str(sealed), "--out", str(tmp_path / "x.wav")]) == 2
    assert "no recording keys" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()
