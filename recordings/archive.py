"""Collect a finished call recording from Asterisk into the agency's archive and describe it.

The file is fetched over ARI (`GET /recordings/stored/{name}/file`), so Asterisk may run on
another host; it is checksummed, sealed with the keyring's current key (AES-256-GCM, see
`recordings.crypto`), written under `archive_dir/YYYY/MM/DD/`, and removed from Asterisk's
spool once safely stored. Recordings are kept 10 years (CMS; design: retention).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from recordings.crypto import Keyring, open_sealed, seal

RETENTION_YEARS = 10


class StoredRecordingSource(Protocol):
    async def stored_recording_file(self, name: str) -> bytes: ...

    async def delete_stored_recording(self, name: str) -> None: ...


@dataclass(frozen=True)
class ArchivedRecording:
    recording_id: str
    path: Path
    format: str
    size_bytes: int
    sha256: str
    """Of the audio itself (before sealing), so a copy can be verified after opening."""
    duration_seconds: float | None
    recorded_at: datetime
    encryption_key_id: str | None

    def to_record(self, *, call_id: str | None, lead_id: str | None) -> dict[str, object]:
        """The CRM bridge's `recording` record."""
        retain = self.recorded_at.replace(year=self.recorded_at.year + RETENTION_YEARS)
        return {
            "recording_id": self.recording_id,
            "call_id": call_id,
            "lead_id": lead_id,
            "storage_uri": self.path.as_uri(),
            "format": self.format,
            "duration_seconds": self.duration_seconds,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "encryption_key_id": self.encryption_key_id,
            "retain_until": retain,
            "recorded_at": self.recorded_at,
        }


def wav_duration(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate = wav.getframerate()
            return wav.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


async def archive_recording(
    source: StoredRecordingSource,
    name: str,
    archive_dir: Path,
    *,
    keyring: Keyring | None = None,
    recorded_at: datetime | None = None,
    fmt: str = "wav",
    attempts: int = 10,
) -> ArchivedRecording:
    """Fetch `name` from Asterisk, seal it (unless `keyring` is None), store it durably, then
    delete Asterisk's copy."""
    recorded_at = recorded_at or datetime.now(UTC)
    data = b""
    for attempt in range(attempts):
        try:
            data = await source.stored_recording_file(name)
            break
        except Exception:
            # Asterisk lists the file once the recording has stopped; right after the call
            # ends it may not be there yet.
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    sealed = seal(data, keyring.current, name) if keyring is not None else data
    suffix = f".{fmt}.sealed" if keyring is not None else f".{fmt}"
    path = archive_dir / recorded_at.strftime("%Y/%m/%d") / f"{name}{suffix}"
    await asyncio.to_thread(_write_durably, path, sealed)
    archived = ArchivedRecording(
        recording_id=name,
        path=path,
        format=fmt,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_seconds=wav_duration(data) if fmt == "wav" else None,
        recorded_at=recorded_at,
        encryption_key_id=keyring.current.key_id if keyring is not None else None,
    )
    await source.delete_stored_recording(name)
    return archived


def archived_path(storage_uri: str) -> Path:
    """The archived file a `recordings.storage_uri` names (a file:// URI, or a plain path)."""
    return Path(unquote(urlsplit(storage_uri).path)) if storage_uri.startswith("file://") else Path(storage_uri)


def read_recording(path: Path, keyring: Keyring, name: str | None = None) -> bytes:
    """The audio of an archived recording (opened when sealed)."""
    blob = path.read_bytes()
    if not path.name.endswith(".sealed"):
        return blob
    recording_name = name or path.name.split(".")[0]
    return open_sealed(blob, keyring, recording_name)
