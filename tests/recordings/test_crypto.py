"""Keys of the archive: format-1 files, the local KEK provider, and refusing a wrong keys folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.crypto import (
    Keyring,
    RecordingCryptoError,
    RecordingKey,
    RecordingKeysMissing,
    open_sealed,
    record_archive_key_ids,
    seal,
)
from recordings.envelope import WrappedDataKey, new_data_key, rewrap_data_key, unwrap_data_key, wrap_data_key

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


def test_the_keys_folder_and_its_files_are_private(tmp_path: Path) -> None:
    Keyring.load_or_create(tmp_path / "keys")
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700


def test_a_data_key_is_wrapped_for_one_recording_and_survives_rotation(tmp_path: Path) -> None:
    keyring = Keyring.load_or_create(tmp_path / "keys")
    data_key = new_data_key()
    wrapped = wrap_data_key(keyring, "call-1-recording", data_key)
    assert data_key not in wrapped.to_bytes() and wrapped.kek_id == keyring.current_kek_id
    assert unwrap_data_key(keyring, WrappedDataKey.from_bytes(wrapped.to_bytes()), "call-1-recording") == data_key
    moved = WrappedDataKey("call-2-recording", wrapped.kek_id, wrapped.wrapped)  # copied onto another recording
    with pytest.raises(RecordingCryptoError):
        unwrap_data_key(keyring, moved, "call-2-recording")
    rotated = keyring.rotated()
    again = rewrap_data_key(rotated, wrapped)
    assert again.kek_id == rotated.current_kek_id != keyring.current_kek_id
    assert unwrap_data_key(rotated, again, "call-1-recording") == data_key
    # The rotation is on disk: a fresh load (a restarted dialer) seals with the new key.
    assert Keyring.load(tmp_path / "keys").current_kek_id == rotated.current_kek_id
    # A running dialer that loaded the old keyring follows the rotation on its next wrap.
    assert wrap_data_key(keyring, "call-3-recording", new_data_key()).kek_id == rotated.current_kek_id


def test_a_mistyped_keys_folder_is_refused_while_an_archive_needs_its_keys(tmp_path: Path) -> None:
    archive, keys = tmp_path / "archive", tmp_path / "keys"
    first = Keyring.for_archive(keys, archive)  # a new archive: the key is created
    record_archive_key_ids(archive, [first.current_kek_id])
    assert Keyring.for_archive(keys, archive).current_kek_id == first.current_kek_id
    with pytest.raises(RecordingKeysMissing, match="no keys in"):
        Keyring.for_archive(tmp_path / "keyz", archive)
    assert not (tmp_path / "keyz").exists()  # and nothing was created there
    Keyring.load_or_create(tmp_path / "other")
    with pytest.raises(RecordingKeysMissing, match=first.current_kek_id):
        Keyring.for_archive(tmp_path / "other", archive)


def test_an_archive_from_before_the_key_list_is_recognised_by_its_files(tmp_path: Path) -> None:
    keyring = Keyring.load_or_create(tmp_path / "keys")
    old = tmp_path / "archive" / "2026" / "01" / "02"
    old.mkdir(parents=True)
    (old / "call-1-recording.wav.sealed").write_bytes(seal(AUDIO, keyring.current, "call-1-recording"))
    with pytest.raises(RecordingKeysMissing, match=keyring.current.key_id):
        Keyring.for_archive(tmp_path / "elsewhere", tmp_path / "archive")
    assert Keyring.for_archive(tmp_path / "keys", tmp_path / "archive").current_kek_id == keyring.current.key_id
