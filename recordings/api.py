"""HTTP endpoints for archived recordings: the CRM (and supervisors, admins) list a call's or
a lead's recordings and fetch the audio, opened from the sealed archive and checked against its
checksum. Agents are refused: the recordings of Medicare sales calls are ePHI, handed out only
to the roles that review them, and every hand-out of audio is kept in `recording_accesses`
(45 CFR 164.312(b)) through the outbox before the audio leaves.

- `GET /v1/recordings?call_id=...` or `?lead_id=...` -> `{"recordings": [...]}`
- `GET /v1/recordings/{recording_id}` -> the recording's row and its `audio_url`
- `GET /v1/recordings/{recording_id}/audio` -> the audio (`audio/wav`)
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

from crm_bridge.store import Recording, TokenRole
from dialer.api.app import DEPS, TOKEN, ApiError, allow, json_value
from recordings.archive import archived_path, read_recording
from recordings.crypto import Keyring, RecordingCryptoError

REVIEWERS = (TokenRole.CRM, TokenRole.SUPERVISOR, TokenRole.ADMIN)
_CONTENT_TYPES = {"wav": "audio/wav"}


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


READER: web.AppKey[RecordingReader | None] = web.AppKey("recording_reader", RecordingReader)


def recording_json(recording: Recording) -> dict[str, object]:
    row = {name: json_value(value) for name, value in asdict(recording).items()}
    row["sha256"] = recording.sha256.strip()
    row["audio_url"] = f"/v1/recordings/{recording.recording_id}/audio"
    return row


async def _recording(request: web.Request) -> Recording:
    recording = await request.app[DEPS].store.get_recording(request.match_info["recording_id"])
    if recording is None:
        raise ApiError(404, "recording_not_found", "no such recording")
    return recording


@allow(*REVIEWERS)
async def list_recordings(request: web.Request) -> web.Response:
    query = request.query
    unknown = sorted(set(query) - {"call_id", "lead_id", "limit"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    if not query.get("call_id") and not query.get("lead_id"):
        raise ApiError(422, "invalid_field", "give call_id or lead_id", field="call_id")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise ApiError(422, "invalid_field", "limit must be a whole number", field="limit") from None
    if not 1 <= limit <= 1000:
        raise ApiError(422, "invalid_field", "limit must be from 1 to 1000", field="limit")
    recordings = await request.app[DEPS].store.list_recordings(
        call_id=query.get("call_id"), lead_id=query.get("lead_id"), limit=limit
    )
    return web.json_response({"recordings": [recording_json(recording) for recording in recordings]})


@allow(*REVIEWERS)
async def get_recording(request: web.Request) -> web.Response:
    return web.json_response(recording_json(await _recording(request)))


@allow(*REVIEWERS)
async def get_recording_audio(request: web.Request) -> web.Response:
    reader = request.app[READER]
    if reader is None:
        raise ApiError(503, "recordings_unavailable", "this API runs without the recordings archive")
    recording = await _recording(request)
    try:
        audio = await asyncio.to_thread(reader.read, recording)
    except RecordingUnavailable as error:
        status = 409 if error.error == "recording_integrity_failed" else 503
        raise ApiError(status, error.error, str(error)) from None
    token = request[TOKEN]
    access = {
        "access_id": str(uuid.uuid4()), "recording_id": recording.recording_id, "call_id": recording.call_id,
        "token_id": token.token_id, "role": token.role.value, "agent_id": token.agent_id, "channel": "http",
        "remote": request.remote, "bytes": len(audio), "accessed_at": request.app[DEPS].clock(),
    }
    # Kept before the audio leaves: no unaudited hand-out (the outbox is durable, PostgreSQL or not).
    await request.app[DEPS].records.put_many([("recording_access", access)])
    name = f"{recording.recording_id}.{recording.format}"
    return web.Response(
        body=audio,
        content_type=_CONTENT_TYPES.get(recording.format, "application/octet-stream"),
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Content-SHA256": recording.sha256.strip(),
                 "Cache-Control": "no-store"},
    )


def add_recording_routes(app: web.Application, reader: RecordingReader | None) -> None:
    app[READER] = reader
    app.router.add_get("/v1/recordings", list_recordings)
    app.router.add_get("/v1/recordings/{recording_id}", get_recording)
    app.router.add_get("/v1/recordings/{recording_id}/audio", get_recording_audio)
