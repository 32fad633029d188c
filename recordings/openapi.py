"""The OpenAPI paths of the recordings endpoints (merged into `dialer.api.openapi`)."""

from __future__ import annotations

from typing import Any


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
