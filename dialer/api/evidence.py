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

from aiohttp import web
from pydantic import Field

from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError
from dialer.api.routes import Answer, RouteTable
from dialer.api.schema import Id, QueryModel
from evidence.model import SubjectNotFound
from evidence.service import EvidenceService, Requester
from evidence.subject import SubjectError, parse_time, subject_from

EVIDENCE: web.AppKey[EvidenceService | None] = web.AppKey("evidence", EvidenceService)
_CHUNK = 256 * 1024


class EvidenceQuery(QueryModel):
    """Exactly one of `lead_id`, `phone` and `call_id`; optionally a period."""

    lead_id: Id | None = None
    phone: str | None = Field(default=None, max_length=40, description="a US number")
    call_id: Id | None = None
    from_: str | None = Field(default=None, alias="from", description="ISO-8601 date-time: contacts from")
    to: str | None = Field(default=None, description="ISO-8601 date-time: contacts until")


routes = RouteTable("evidence")


@routes.get("/v1/evidence", "getEvidencePacket",
            "The audit-defense packet for a lead, a number or a call: a ZIP with the report (HTML, PDF), every row "
            "as JSON, the recordings, the audit-trail entries and a signed manifest; check it with `dialer evidence "
            "verify`. Every packet is audited.", roles=(TokenRole.SUPERVISOR, TokenRole.ADMIN), query=EvidenceQuery,
            responses={200: Answer(None, "the packet; X-Evidence-Packet-Id and X-Manifest-SHA256 name it",
                                   content_type="application/zip",
                                   headers={"X-Evidence-Packet-Id": "the packet's id",
                                            "X-Manifest-SHA256": "the signed manifest's SHA-256"})},
            errors={403: "only supervisor and admin tokens may", 404: "`subject_not_found`: the CRM knows nothing "
                    "about it", 422: "`invalid_field`: not exactly one subject, a bad number or time",
                    503: "`evidence_unavailable` (no audit signing key) or `database_unavailable`"})
async def get_evidence(request: web.Request, query: EvidenceQuery) -> web.StreamResponse:
    try:
        subject = subject_from(lead_id=query.lead_id, phone=query.phone, call_id=query.call_id,
                               start=parse_time(query.from_, "from"), end=parse_time(query.to, "to"))
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
    """The packet builder the route uses (the route itself is in `routes`)."""
    app[EVIDENCE] = service
