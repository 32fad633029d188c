"""HTTP endpoints for archived recordings: the CRM (and supervisors, admins) list a call's or
a lead's recordings and fetch the audio, streamed from the sealed archive and checked before it
leaves. The recordings of Medicare sales calls are ePHI: an agent may fetch only those of its own
calls (the console's call history; it cannot search them), and every hand-out of audio is kept in
`recording_accesses` (45 CFR 164.312(b)) through the outbox before the audio leaves.

- `GET /v1/recordings?call_id=...` or `?lead_id=...` -> `{"recordings": [...], "next": ...}`
- `GET /v1/recordings/{recording_id}` -> the recording's row and its `audio_url`
- `GET /v1/recordings/{recording_id}/audio[?format=wav|opus|mp3][&mix=mono]` -> the audio, as
  stored (Opus in Ogg) unless another format or a mono mix is asked; HTTP Range requests
  (RFC 9110 section 14) get 206 with only the segments they cover decrypted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict
from typing import ClassVar, Literal

import structlog
from aiohttp import web
from pydantic import ConfigDict, Field

from crm_bridge.dispositions import DispositionCode
from crm_bridge.kinds import RecordKind
from crm_bridge.store import Recording, TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError, problem
from dialer.api.pagination import PageQuery, decode_cursor, link_header, page
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Id, QueryModel, ResponseModel, UtcTime, UtcTimeIn
from recordings.access import AccessChannel, access_record
from recordings.crypto import RecordingCryptoError
from recordings.reader import OpenedRecording, RecordingReader, RecordingUnavailable, representation
from recordings.transcode import AudioFormat, TranscodeError

log = structlog.get_logger(__name__)

REVIEWERS = (TokenRole.CRM, TokenRole.SUPERVISOR, TokenRole.ADMIN)
# An agent may hear the recordings of its own calls (the console's call history), audited alike.
LISTENERS = (*REVIEWERS, TokenRole.AGENT)
RECORDING_ID = {"recording_id": "the recording's id"}
AUDIO_TYPES = ("audio/ogg", "audio/wav", "audio/mpeg")

READER: web.AppKey[RecordingReader | None] = web.AppKey("recording_reader", RecordingReader)
routes = RouteTable("recordings")


class RecordingBody(ResponseModel):
    """One row of the CRM recordings table, and where to fetch its audio."""

    recording_id: str
    call_id: str | None
    lead_id: str | None
    storage_uri: str = Field(description="the sealed file in the dialer's archive")
    format: str
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str = Field(description="of the audio as stored (as served by audio_url without options)")
    encryption_key_id: str | None = Field(description="the KEK wrapping its data key")
    retain_until: UtcTime | None
    recorded_at: UtcTime
    channels: Literal[1, 2]
    channel_layout: str = Field(description="`mixed`, or `agent,lead` (left, right)")
    line_of_business: str | None = Field(description="sets retain_until")
    legal_hold: bool
    legal_hold_by: str | None
    legal_hold_reason: str | None
    legal_hold_at: UtcTime | None
    purged_at: UtcTime | None = Field(description="set when the audio and its key were destroyed")
    purged_by: str | None
    purge_reason: str | None
    audio_url: str | None = Field(description="null once purged")

    @classmethod
    def of(cls, recording: Recording) -> RecordingBody:
        row = asdict(recording)
        row["sha256"] = recording.sha256.strip()
        row["audio_url"] = (None if recording.purged_at is not None
                            else f"/v1/recordings/{recording.recording_id}/audio")
        return cls.model_validate(row)


class RecordingPage(ResponseModel):
    recordings: list[RecordingBody]
    next: str | None = Field(description="the URL of the next page; null on the last page")


class RecordingQuery(PageQuery):
    # Kept as before pagination: an unknown parameter here is 422 `unknown_field`.
    unknown_parameter: ClassVar[tuple[int, str]] = (422, "unknown_field")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    call_id: Id | None = None
    lead_id: Id | None = Field(default=None, description="give at least one filter")
    agent_id: Id | None = Field(default=None, description="the recorded call's agent")
    campaign_id: Id | None = Field(default=None, description="the recorded call's campaign")
    since: UtcTimeIn | None = Field(default=None, description="recorded at or after")
    until: UtcTimeIn | None = Field(default=None, description="recorded before")
    disposition: DispositionCode | None = Field(default=None, description="a disposition of the recorded call")
    min_seconds: float | None = Field(default=None, ge=0, description="at least this long")
    max_seconds: float | None = Field(default=None, ge=0, description="at most this long")

    def searched(self) -> bool:
        return any(value is not None for value in (
            self.call_id, self.lead_id, self.agent_id, self.campaign_id, self.since, self.until, self.disposition,
            self.min_seconds, self.max_seconds))


class AudioQuery(QueryModel):
    unknown_parameter: ClassVar[tuple[int, str]] = (422, "unknown_field")
    format: AudioFormat | None = Field(default=None, description="default: as stored (opus: Opus in Ogg)")
    mix: Literal["mono"] | None = Field(default=None, description="mix a two-channel recording down to one channel")


async def _recording(request: web.Request) -> Recording:
    store = request.app[DEPS].store
    recording = await store.get_recording(request.match_info["recording_id"])
    if recording is None:
        raise ApiError(404, "recording_not_found", "no such recording")
    token = request[TOKEN]
    if token.role is TokenRole.AGENT:
        # Only its own calls' recordings, and another's is not even said to exist.
        call = await store.get_call(recording.call_id) if recording.call_id else None
        if call is None or token.agent_id is None or call.agent_id != token.agent_id:
            raise ApiError(404, "recording_not_found", "no such recording")
    return recording


@routes.get("/v1/recordings", "listRecordings",
            "Search recordings, newest first: by call, lead, agent, campaign, time, disposition and duration "
            "(crm, supervisor and admin tokens)",
            roles=REVIEWERS, query=RecordingQuery,
            responses={200: Answer(RecordingPage, "a page of recordings", headers={"Link": "rel=next"})},
            errors={403: "only crm, supervisor and admin tokens may see recordings",
                    422: "a query parameter is invalid (`field` names it); give at least one filter"})
async def list_recordings(request: web.Request, query: RecordingQuery) -> Reply:
    if not query.searched():
        raise ApiError(422, "invalid_field", "give call_id, lead_id or another filter", field="call_id")
    recordings = await request.app[DEPS].store.list_recordings(
        call_id=query.call_id, lead_id=query.lead_id, limit=query.limit + 1, after=decode_cursor(query),
        agent_id=query.agent_id, campaign_id=query.campaign_id, since=query.since, until=query.until,
        disposition=query.disposition.value if query.disposition else None, min_seconds=query.min_seconds,
        max_seconds=query.max_seconds,
    )
    items, next_url = page(request, query, recordings, lambda row: (row.recorded_at, row.recording_id))
    return Reply(RecordingPage(recordings=[RecordingBody.of(row) for row in items], next=next_url),
                 headers=link_header(next_url))


@routes.get("/v1/recordings/{recording_id}", "getRecording", "One recording's row (agents: of their own calls)",
            roles=LISTENERS, parameters=RECORDING_ID, responses={200: Answer(RecordingBody, "the recording")},
            errors={404: "`recording_not_found` (for an agent: or not of its own call)"})
async def get_recording(request: web.Request) -> Reply:
    return Reply(RecordingBody.of(await _recording(request)))


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

    def response(self, request: web.Request) -> web.Response:
        return problem(request, 416, "range_not_satisfiable", str(self), headers={"Content-Range": f"bytes */{self.size}"})


def _unsatisfiable(size: int) -> _Unsatisfiable:
    return _Unsatisfiable(size)


async def _next(chunks: Iterator[bytes]) -> bytes | None:
    return await asyncio.to_thread(next, chunks, None)


@routes.get("/v1/recordings/{recording_id}/audio", "getRecordingAudio",
            "The recording's audio, streamed from the sealed archive and checked before it leaves (every segment's "
            "tag and the sha256 for a whole read; the segments covered for a Range); every hand-out is kept in the "
            "recording_accesses table first (agents: of their own calls)", roles=LISTENERS, parameters=RECORDING_ID,
            query=AudioQuery,
            header_parameters={"Range": "one byte range (RFC 9110 14.2), served for the stored audio and for WAV",
                               "If-Range": "the ETag of the copy the client holds"},
            responses={200: Answer(None, "the audio; for the stored format, header X-Content-SHA256 carries its "
                                         "checksum", content_type=AUDIO_TYPES,
                                   headers={"ETag": "the audio's version and shape", "Accept-Ranges": "bytes or none"}),
                       206: Answer(None, "the byte range asked (header Content-Range)",
                                   content_type=("audio/ogg", "audio/wav"),
                                   headers={"Content-Range": "the range sent, of the whole size"})},
            errors={404: "`recording_not_found` (for an agent: or not of its own call)",
                    409: "`recording_integrity_failed`: the archived file does not open or does not match its "
                         "checksum",
                    410: "`recording_purged`: deleted at the end of its retention (the row stays as its tombstone)",
                    416: "`range_not_satisfiable`: the Range is outside the audio (header Content-Range: bytes */SIZE)",
                    503: "`recording_unavailable`: the archived file is missing or unreadable; "
                         "`recordings_unavailable`: this API runs without the archive"})
async def get_recording_audio(request: web.Request, query: AudioQuery) -> web.StreamResponse:
    reader = request.app[READER]
    if reader is None:
        raise ApiError(503, "recordings_unavailable", "this API runs without the recordings archive")
    fmt, mono = query.format, query.mix is not None
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
        return error.response(request)
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
    """The archive the audio route reads (the routes themselves are in `routes`)."""
    app[READER] = reader
