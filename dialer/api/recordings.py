"""HTTP endpoints for archived recordings: the CRM (and supervisors, admins) list a call's or
a lead's recordings and fetch the audio, streamed from the sealed archive and checked before it
leaves. Agents are refused: the recordings of Medicare sales calls are ePHI, handed out only to
the roles that review them, and every hand-out of audio is kept in `recording_accesses`
(45 CFR 164.312(b)) through the outbox before the audio leaves.

- `GET /v1/recordings?call_id=...` or `?lead_id=...` -> `{"recordings": [...]}`
- `GET /v1/recordings/{recording_id}` -> the recording's row and its `audio_url`
- `GET /v1/recordings/{recording_id}/audio[?format=wav|opus|mp3][&mix=mono]` -> the audio, as
  stored (Opus in Ogg) unless another format or a mono mix is asked; HTTP Range requests
  (RFC 9110 section 14) get 206 with only the segments they cover decrypted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import structlog
from aiohttp import web

from crm_bridge.kinds import RecordKind
from crm_bridge.store import Recording, TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError, allow, json_value
from recordings.access import AccessChannel, access_record
from recordings.crypto import RecordingCryptoError
from recordings.reader import OpenedRecording, RecordingReader, RecordingUnavailable, representation
from recordings.transcode import AudioFormat, TranscodeError

log = structlog.get_logger(__name__)

REVIEWERS = (TokenRole.CRM, TokenRole.SUPERVISOR, TokenRole.ADMIN)

READER: web.AppKey[RecordingReader | None] = web.AppKey("recording_reader", RecordingReader)


def recording_json(recording: Recording) -> dict[str, object]:
    row = {name: json_value(value) for name, value in asdict(recording).items()}
    row["sha256"] = recording.sha256.strip()
    row["audio_url"] = None if recording.purged_at is not None else f"/v1/recordings/{recording.recording_id}/audio"
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


def _audio_options(request: web.Request) -> tuple[AudioFormat | None, bool]:
    query = request.query
    unknown = sorted(set(query) - {"format", "mix"})
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    fmt: AudioFormat | None = None
    if "format" in query:
        try:
            fmt = AudioFormat(query["format"])
        except ValueError:
            raise ApiError(422, "invalid_field", "format must be opus, wav or mp3", field="format") from None
    if query.get("mix", "mono") != "mono":
        raise ApiError(422, "invalid_field", "mix can only be mono", field="mix")
    return fmt, "mix" in query


def _byte_range(request: web.Request, size: int | None, etag: str) -> tuple[int, int] | None:
    """The one byte range asked (`start`, `end` exclusive), None for the whole; 416 when it
    cannot be served. Ranges are honoured only when the length is known in advance."""
    if "Range" not in request.headers or size is None:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip('"') != etag:
        return None  # the client's copy is of another version: send it whole (RFC 9110 13.1.5)
    try:
        wanted = request.http_range
    except ValueError:
        wanted = None
    if wanted is None or (wanted.start is None and wanted.stop is None):
        raise _unsatisfiable(size)
    start, stop = wanted.start, wanted.stop
    if start is not None and start < 0:  # a suffix: the last -start bytes
        start, stop = max(0, size + start), size
    start = start or 0
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        raise _unsatisfiable(size)
    return start, stop


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"the range asked is not within the {size} bytes of the audio (one range, in bytes)")
        self.size = size

    def response(self) -> web.Response:
        return web.json_response({"error": "range_not_satisfiable", "message": str(self)}, status=416,
                                 headers={"Content-Range": f"bytes */{self.size}"})


def _unsatisfiable(size: int) -> _Unsatisfiable:
    return _Unsatisfiable(size)


async def _next(chunks: Iterator[bytes]) -> bytes | None:
    return await asyncio.to_thread(next, chunks, None)


@allow(*REVIEWERS)
async def get_recording_audio(request: web.Request) -> web.StreamResponse:
    reader = request.app[READER]
    if reader is None:
        raise ApiError(503, "recordings_unavailable", "this API runs without the recordings archive")
    fmt, mono = _audio_options(request)
    recording = await _recording(request)
    if recording.purged_at is not None:
        raise ApiError(410, "recording_purged", f"{recording.recording_id} was purged at the end of its retention")
    try:
        opened: OpenedRecording = await asyncio.to_thread(reader.open, recording)
    except RecordingUnavailable as error:
        raise _unavailable(error) from None
    try:
        return await _send(request, recording, opened, fmt, mono)
    finally:
        opened.close()


def _unavailable(error: RecordingUnavailable) -> ApiError:
    return ApiError(409 if error.error == "recording_integrity_failed" else 503, error.error, str(error))


async def _send(request: web.Request, recording: Recording, opened: OpenedRecording, fmt: AudioFormat | None,
                mono: bool) -> web.StreamResponse:
    shape = representation(opened, fmt, mix_to_mono=mono)
    etag = f"{recording.sha256.strip()}-{shape.format.value}-{shape.channels}"
    try:
        wanted = _byte_range(request, shape.size, etag)
    except _Unsatisfiable as error:
        return error.response()
    start, end = wanted if wanted is not None else (0, shape.size)
    # Checked before anything leaves: the whole recording (tags and SHA-256) for a whole read
    # or any conversion, only the segments covered for a range of the stored bytes.
    try:
        if shape.stored and wanted is not None:
            await asyncio.to_thread(opened.check, start, end)
        else:
            await asyncio.to_thread(opened.check)
    except RecordingUnavailable as error:
        raise _unavailable(error) from None
    length = None if end is None else end - start
    response = web.StreamResponse(status=206 if wanted is not None else 200)
    response.content_type = shape.content_type
    name = f"{recording.recording_id}.{shape.format.value}"
    response.headers.update({
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store", "ETag": f'"{etag}"',
        "Accept-Ranges": "bytes" if shape.size is not None else "none",
    })
    if shape.stored and wanted is None:
        response.headers["X-Content-SHA256"] = recording.sha256.strip()
    if length is not None:
        response.content_length = length
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1] - 1}/{shape.size}"
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    token = request[TOKEN]
    # Kept before the audio leaves: no unaudited hand-out (the outbox is durable, PostgreSQL or not).
    await request.app[DEPS].records.put_many([(RecordKind.RECORDING_ACCESS, access_record(
        recording.recording_id, recording.call_id, channel=AccessChannel.HTTP, role=token.role.value,
        token_id=token.token_id, agent_id=token.agent_id, remote=request.remote, size=length,
        at=request.app[DEPS].clock(),
    ))])
    await response.prepare(request)
    chunks = shape.chunks(start, end)
    try:
        while (chunk := await _next(chunks)) is not None:
            await response.write(chunk)
    except (RecordingUnavailable, RecordingCryptoError, TranscodeError) as error:
        # Damaged between the check and the send, or ffmpeg failed: the status is gone, so the
        # connection is cut (the client sees a short body, never wrong audio).
        log.error("recording_send_failed", recording=recording.recording_id, error=str(error))
        response.force_close()
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
    await response.write_eof()
    return response


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
            410: "`recording_purged`: deleted at the end of its retention (the row stays as its tombstone)",
            416: "`range_not_satisfiable`: the Range is outside the audio (header Content-Range: bytes */SIZE)",
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
        "encryption_key_id": {"type": ["string", "null"], "description": "the KEK wrapping its data key"},
        "retain_until": _TS,
        "recorded_at": {"type": "string", "format": "date-time"},
        "channels": {"type": "integer", "enum": [1, 2]},
        "channel_layout": {"type": "string", "description": "`mixed`, or `agent,lead` (left, right)"},
        "line_of_business": {"type": ["string", "null"], "description": "sets retain_until"},
        "legal_hold": {"type": "boolean"}, "legal_hold_by": {"type": ["string", "null"]},
        "legal_hold_reason": {"type": ["string", "null"]}, "legal_hold_at": _TS,
        "purged_at": {**_TS, "description": "set when the audio and its key were destroyed"},
        "purged_by": {"type": ["string", "null"]}, "purge_reason": {"type": ["string", "null"]},
        "audio_url": {"type": ["string", "null"], "description": "null once purged"},
    },
}
_AUDIO = {"schema": {"type": "string", "format": "binary"}}


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
            "summary": "The recording's audio, streamed from the sealed archive and checked before it leaves "
                       "(every segment's tag and the sha256 for a whole read; the segments covered for a Range); "
                       "every hand-out is kept in the recording_accesses table first",
            "parameters": [
                _RECORDING_ID,
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["opus", "wav", "mp3"]},
                 "description": "default: as stored (opus: Opus in Ogg)"},
                {"name": "mix", "in": "query", "schema": {"type": "string", "enum": ["mono"]},
                 "description": "mix a two-channel recording down to one channel"},
                {"name": "Range", "in": "header", "schema": {"type": "string"},
                 "description": "one byte range (RFC 9110 14.2), served for the stored audio and for WAV"},
            ],
            "responses": {
                "200": {"description": "the audio; for the stored format, header X-Content-SHA256 carries its "
                                       "checksum", "content": {"audio/ogg": _AUDIO, "audio/wav": _AUDIO,
                                                               "audio/mpeg": _AUDIO}},
                "206": {"description": "the byte range asked (header Content-Range)",
                        "content": {"audio/ogg": _AUDIO, "audio/wav": _AUDIO}},
                **_errors(401, 403, 404, 409, 410, 416, 422, 503)},
        }},
    }
