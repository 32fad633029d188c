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
import uuid
from dataclasses import asdict
from typing import Any

from aiohttp import web

from crm_bridge.kinds import RecordKind
from crm_bridge.store import Recording, TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError, allow, json_value
from recordings.reader import RecordingReader, RecordingUnavailable

REVIEWERS = (TokenRole.CRM, TokenRole.SUPERVISOR, TokenRole.ADMIN)
_CONTENT_TYPES = {"wav": "audio/wav"}


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
    await request.app[DEPS].records.put_many([(RecordKind.RECORDING_ACCESS, access)])
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


# ---- OpenAPI -----------------------------------------------------------------------------------
def _errors(*statuses: int) -> dict[str, Any]:
    text = {401: "missing, unknown or revoked token",
            403: "only crm, supervisor and admin tokens may see recordings",
            404: "`recording_not_found`",
            409: "`recording_integrity_failed`: the archived file does not open or does not match its checksum",
            422: "a query parameter is invalid (`field` names it)",
            503: "`recording_unavailable`: the archived file is missing or unreadable; "
                 "`recordings_unavailable`: this API runs without the archive"}
    return {str(s): {"description": text[s],
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


_RECORDING_ID = {"name": "recording_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TS = {"type": ["string", "null"], "format": "date-time"}
_RECORDING = {
    "type": "object",
    "description": "One row of the CRM recordings table, and where to fetch its audio.",
    "properties": {
        "recording_id": {"type": "string"}, "call_id": {"type": ["string", "null"]},
        "lead_id": {"type": ["string", "null"]},
        "storage_uri": {"type": "string", "description": "the sealed file in the dialer's archive"},
        "format": {"type": "string"}, "duration_seconds": {"type": ["number", "null"]},
        "size_bytes": {"type": ["integer", "null"]},
        "sha256": {"type": "string", "description": "of the audio (as served by audio_url)"},
        "encryption_key_id": {"type": ["string", "null"]}, "retain_until": _TS,
        "recorded_at": {"type": "string", "format": "date-time"}, "audio_url": {"type": "string"},
    },
}


def recording_paths() -> dict[str, Any]:
    return {
        "/v1/recordings": {"get": {
            "summary": "A call's or a lead's recordings, newest first (crm, supervisor and admin tokens)",
            "parameters": [
                {"name": "call_id", "in": "query", "schema": {"type": "string"}},
                {"name": "lead_id", "in": "query", "schema": {"type": "string"},
                 "description": "give call_id or lead_id (or both)"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ],
            "responses": {"200": {"description": "the recordings", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"recordings": {"type": "array", "items": _RECORDING}}}}}},
                **_errors(401, 403, 422)},
        }},
        "/v1/recordings/{recording_id}": {"get": {
            "summary": "One recording's row",
            "parameters": [_RECORDING_ID],
            "responses": {"200": {"description": "the recording", "content": {"application/json": {
                "schema": _RECORDING}}}, **_errors(401, 403, 404)},
        }},
        "/v1/recordings/{recording_id}/audio": {"get": {
            "summary": "The recording's audio, opened from the sealed archive and checked against its sha256; "
                       "every hand-out is kept in the recording_accesses table",
            "parameters": [_RECORDING_ID],
            "responses": {"200": {"description": "the audio; header X-Content-SHA256 carries its checksum",
                                  "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                          **_errors(401, 403, 404, 409, 503)},
        }},
    }
