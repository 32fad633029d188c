"""Opening archived recordings for whoever is allowed to have them: only files inside the archive,
and only when they open and match their checksum."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from crm_bridge.store import Recording
from recordings.archive import archived_path, read_recording
from recordings.crypto import Keyring, RecordingCryptoError


class RecordingUnavailable(Exception):
    """The recording's audio cannot be handed out; `error` is the API's reason code."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class RecordingReader:
    """Opens archived recordings, only from inside the archive and only when they check out."""

    archive_dir: Path
    keyring: Keyring

    def path_of(self, recording: Recording) -> Path:
        resolved = archived_path(recording.storage_uri).resolve()
        if not resolved.is_relative_to(self.archive_dir.resolve()):
            # A row pointing elsewhere (edited by hand, or another host's archive) is not followed.
            raise RecordingUnavailable("recording_unavailable", f"{recording.recording_id} is not in this archive")
        return resolved

    def read(self, recording: Recording) -> bytes:
        path = self.path_of(recording)
        try:
            audio = read_recording(path, self.keyring, recording.recording_id)
        except FileNotFoundError:
            raise RecordingUnavailable("recording_unavailable", f"the archived file of {recording.recording_id} "
                                       "is missing") from None
        except RecordingCryptoError as error:
            raise RecordingUnavailable("recording_integrity_failed", str(error)) from None
        except OSError as error:
            raise RecordingUnavailable("recording_unavailable", f"cannot read the archive: {error.strerror}") from None
        if hashlib.sha256(audio).hexdigest() != recording.sha256.strip():
            raise RecordingUnavailable("recording_integrity_failed",
                                       f"{recording.recording_id} does not match its checksum")
        return audio
