"""`GET /v1/evidence?lead_id=|phone=|call_id=[&from=&to=]`: the audit-defense packet (a signed
ZIP, docs/evidence.md), for supervisors and admins. Thin: the packet is made by
`evidence.service.EvidenceService`; this route parses the request, writes the audit records (the
packet, and an access per recording in it) through the outbox before the first byte leaves,
and streams the file. Legal holds are placed from the command line (`dialer evidence
--legal-hold`), not by a GET.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError, allow, only_parameters
from evidence.model import SubjectNotFound
from evidence.service import EvidenceService, Requester
from evidence.subject import SubjectError, parse_time, subject_from

EVIDENCE: web.AppKey[EvidenceService | None] = web.AppKey("evidence", EvidenceService)
_CHUNK = 256 * 1024


@allow(TokenRole.SUPERVISOR, TokenRole.ADMIN)
async def get_evidence(request: web.Request) -> web.StreamResponse:
    only_parameters(request, "lead_id", "phone", "call_id", "from", "to")
    query = request.query
    try:
        subject = subject_from(lead_id=query.get("lead_id"), phone=query.get("phone"), call_id=query.get("call_id"),
                               start=parse_time(query.get("from"), "from"), end=parse_time(query.get("to"), "to"))
    except SubjectError as error:
        raise ApiError(422, "invalid_field", str(error), field=error.field) from None
    service = request.app[EVIDENCE]
    if service is None:
        raise ApiError(503, "evidence_unavailable", "this API runs without the audit signing key")
    token = request[TOKEN]
    requester = Requester(token.token_id, token.role.value, "http", token.token_id, token.agent_id, request.remote)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="dialer-evidence-"))
    try:
        out = folder / f"evidence-{subject.kind}-{subject.value.lstrip('+')}.zip"
        try:
            built = await service.build(subject, out, requester)
        except SubjectNotFound as error:
            raise ApiError(404, "subject_not_found", str(error)) from None
        # Audited before it leaves: the outbox is durable, PostgreSQL or not.
        await request.app[DEPS].records.put_many(built.audit_records)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{out.name}"',
            "X-Evidence-Packet-Id": built.packet_id, "X-Manifest-SHA256": built.written.manifest_sha256,
            "Cache-Control": "no-store"})
        response.content_length = (await asyncio.to_thread(out.stat)).st_size
        await response.prepare(request)
        with await asyncio.to_thread(out.open, "rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def add_evidence_routes(app: web.Application, service: EvidenceService | None) -> None:
    app[EVIDENCE] = service
    app.router.add_get("/v1/evidence", get_evidence)


def evidence_paths() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {"/v1/evidence": {"get": {
        "summary": "The audit-defense packet for a lead, a number or a call (supervisor and admin tokens): a ZIP "
                   "with the report (HTML, PDF), every row as JSON, the recordings, the audit-trail entries and a "
                   "signed manifest; check it with `dialer evidence verify`. Every packet is audited.",
        "parameters": [
            {"name": "lead_id", "in": "query", "schema": {"type": "string"}},
            {"name": "phone", "in": "query", "schema": {"type": "string"}, "description": "a US number"},
            {"name": "call_id", "in": "query", "schema": {"type": "string"},
             "description": "exactly one of lead_id, phone and call_id"},
            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        ],
        "responses": {
            "200": {"description": "the packet; X-Evidence-Packet-Id and X-Manifest-SHA256 name it",
                    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
            "400": {"description": "an unknown query parameter", "content": error},
            "401": {"description": "missing, unknown or revoked token", "content": error},
            "403": {"description": "only supervisor and admin tokens may", "content": error},
            "404": {"description": "`subject_not_found`: the CRM knows nothing about it", "content": error},
            "422": {"description": "`invalid_field`: not exactly one subject, a bad number or time", "content": error},
            "503": {"description": "`evidence_unavailable` or `database_unavailable`", "content": error},
        },
    }}}
