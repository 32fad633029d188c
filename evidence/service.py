"""Making a packet, for the CLI and the HTTP API alike: optional legal holds, one snapshot of
the CRM with a fresh signed checkpoint, the file written off the event loop, and the audit
records of it (the packet itself, and one recording access per recording handed out) returned
for the caller to write through its outbox before the packet leaves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from crm_bridge.audit_chain import json_value
from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.kinds import RecordKind
from crm_bridge.pg import connect
from evidence.collect import collect
from evidence.model import EvidenceData
from evidence.packet import OpenAudio, PacketMeta, WrittenPacket, write_packet
from evidence.recordings import LegalHolds
from evidence.subject import Subject

Record = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Requester:
    """Who asks for the packet, as the audit rows name them."""

    name: str
    """A token id, or `cli:<user>`."""
    role: str
    channel: str
    """`http` or `cli`."""
    token_id: str | None = None
    agent_id: str | None = None
    remote: str | None = None


@dataclass(frozen=True)
class LegalHoldRequest:
    by: str
    reason: str


@dataclass(frozen=True)
class BuiltPacket:
    written: WrittenPacket
    data: EvidenceData
    packet_id: str
    audit_records: tuple[Record, ...]
    """The `evidence_packet` record and a `recording_access` per recording in the packet: write
    them (`RecordSink.put_many`) before handing the file out."""


@dataclass
class EvidenceService:
    dsn: str
    key: AuditSigningKey
    open_audio: OpenAudio | None
    holds: LegalHolds | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def build(self, subject: Subject, out: Path, requester: Requester,
                    legal_hold: LegalHoldRequest | None = None) -> BuiltPacket:
        """Write the packet for `subject` to `out`, after placing the legal hold when one is asked
        for (its outcome per recording is in the packet). Raises `SubjectNotFound` and
        `DatabaseUnavailable`."""
        packet_id = f"evp-{uuid.uuid4().hex}"
        conn = await connect(self.dsn)
        try:
            holds: dict[str, str] = {}
            if legal_hold is not None:
                holds = await self._hold(conn, subject, legal_hold)
            data = await collect(conn, subject, self.key)
        finally:
            await conn.close()
        now = self.clock()
        meta = PacketMeta(packet_id, json_value(now), requester.name, requester.role, requester.channel, holds)
        written = await asyncio.to_thread(write_packet, data, meta, self.key, out, self.open_audio)
        return BuiltPacket(written, data, packet_id, self._audit(data, written, meta, requester, now, holds))

    async def _hold(self, conn: asyncpg.Connection, subject: Subject, request: LegalHoldRequest) -> dict[str, str]:
        if self.holds is None:
            raise ValueError("legal holds are not available here")
        # The recordings the packet will cover, read first so the packet shows them held.
        probe = await collect_recording_ids(conn, subject)
        outcomes = await self.holds.hold(conn, probe, by=request.by, reason=request.reason, now=self.clock())
        return {outcome.recording_id: outcome.result for outcome in outcomes}

    @staticmethod
    def _audit(data: EvidenceData, written: WrittenPacket, meta: PacketMeta, requester: Requester, now: datetime,
               holds: Mapping[str, str]) -> tuple[Record, ...]:
        packet: Record = (RecordKind.EVIDENCE_PACKET.value, {
            "packet_id": meta.packet_id, "created_at": now, "requested_by": requester.name, "role": requester.role,
            "channel": requester.channel, "subject": data.subject.to_json(),
            "manifest_sha256": written.manifest_sha256, "files": written.files,
            "recording_ids": list(written.recording_ids), "legal_hold": any(v == "held" for v in holds.values()),
            "checkpoint_id": None if data.checkpoint is None else data.checkpoint.checkpoint_id,
        })
        calls = {row["recording_id"]: row.get("call_id") for row in data.recordings}
        # Every recording handed out in a packet is an access to it (45 CFR 164.312(b)).
        accesses: list[Record] = [(RecordKind.RECORDING_ACCESS.value, {
            "access_id": str(uuid.uuid4()), "recording_id": recording_id, "call_id": calls.get(recording_id),
            "token_id": requester.token_id, "role": requester.role, "agent_id": requester.agent_id,
            "channel": f"evidence:{requester.channel}", "remote": requester.remote, "bytes": size, "accessed_at": now,
        }) for recording_id, size in written.audio_bytes.items()]
        return (packet, *accesses)


async def collect_recording_ids(conn: asyncpg.Connection, subject: Subject) -> list[str]:
    """The recordings of the calls a packet for `subject` covers (for the legal hold)."""
    rows = await conn.fetch(
        "SELECT r.recording_id FROM recordings r JOIN calls c ON c.call_id = r.call_id WHERE "
        "(c.call_id = $1 OR c.lead_id = $2 OR c.lead_number = $3 OR "
        " ($2::text IS NOT NULL AND c.lead_number = ANY((SELECT phones FROM leads WHERE lead_id = $2)::text[]))) "
        "AND ($4::timestamptz IS NULL OR c.requested_at >= $4) AND ($5::timestamptz IS NULL OR c.requested_at < $5) "
        "ORDER BY r.recorded_at", subject.call_id, subject.lead_id, subject.phone, subject.start, subject.end)
    return [row["recording_id"] for row in rows]
