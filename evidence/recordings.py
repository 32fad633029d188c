"""The packet's two ties to the recordings archive, each behind one small seam:

- `recording_audio`: the one place a packet opens a recording: the stored audio (Opus in Ogg,
  or WAV for old recordings), authenticated and checked against the row's SHA-256 by
  `RecordingReader.read`. When the archive's reader changes, adapt this function only.
- `LegalHolds`: placing a legal hold on every recording a packet covers. `LifecycleLegalHolds`
  calls the recordings lifecycle (`recordings.lifecycle.set_legal_hold`: under a row lock, with
  its `recording_events` entry in the same transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from crm_bridge.store import Recording
from evidence.packet import AudioFile
from recordings.lifecycle import LifecycleError, set_legal_hold
from recordings.reader import RecordingReader

_MEDIA_TYPES = {"wav": "audio/wav", "opus": "audio/ogg", "ogg": "audio/ogg", "mp3": "audio/mpeg"}


def recording_audio(reader: RecordingReader, row: Mapping[str, Any]) -> AudioFile:
    """A recording's audio, opened from the archive and checked against its checksum (raises
    `recordings.reader.RecordingUnavailable` otherwise)."""
    recording = Recording(**{name: _value(name, row.get(name)) for name in Recording.__dataclass_fields__})
    fmt = str(row.get("format") or "wav")
    return AudioFile(reader.read(recording), fmt, _MEDIA_TYPES.get(fmt, "application/octet-stream"))


def _value(name: str, value: Any) -> Any:
    # The packet's rows are plain JSON; the reader takes the store's row type.
    if name.endswith(("_until", "_at")) and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


@dataclass(frozen=True)
class HoldOutcome:
    recording_id: str
    result: str
    """`held`, or why not: `already_held`, `purged`, `not_found`."""


class LegalHolds(Protocol):
    async def hold(self, conn: asyncpg.Connection, recording_ids: Sequence[str], *, by: str, reason: str,
                   now: datetime) -> list[HoldOutcome]: ...


class LifecycleLegalHolds:
    """Legal holds through the recordings lifecycle."""

    async def hold(self, conn: asyncpg.Connection, recording_ids: Sequence[str], *, by: str, reason: str,
                   now: datetime) -> list[HoldOutcome]:
        if not by.strip() or not reason.strip():
            raise ValueError("a legal hold says who sets it and why")
        outcomes = []
        for recording_id in recording_ids:
            try:
                await set_legal_hold(conn, recording_id, held=True, by=by, reason=reason, now=now)
            except LifecycleError as error:
                text = str(error)
                result = ("already_held" if "already" in text else "purged" if "purged" in text
                          else "not_found" if text.startswith("no recording") else text)
                outcomes.append(HoldOutcome(recording_id, result))
            else:
                outcomes.append(HoldOutcome(recording_id, "held"))
        return outcomes
