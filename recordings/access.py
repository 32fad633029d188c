"""The audit row of one hand-out of a recording's audio (`recording_accesses`).

Recordings of Medicare sales calls are ePHI: every way audio leaves the archive (HTTP API,
command line, export) writes this row through the outbox first, so no hand-out goes
unrecorded, PostgreSQL up or not (45 CFR 164.312(b), audit controls).
"""

from __future__ import annotations

import uuid
from datetime import datetime


class AccessChannel:
    """`recording_accesses.channel`."""

    HTTP = "http"
    CLI = "cli"
    EXPORT = "export"


def access_record(
    recording_id: str,
    call_id: str | None,
    *,
    channel: str,
    role: str,
    at: datetime,
    token_id: str | None = None,
    agent_id: str | None = None,
    remote: str | None = None,
    size: int | None = None,
) -> dict[str, object]:
    """The outbox's `recording_access` record; `size` is the number of bytes handed out."""
    return {
        "access_id": str(uuid.uuid4()), "recording_id": recording_id, "call_id": call_id, "token_id": token_id,
        "role": role, "agent_id": agent_id, "channel": channel, "remote": remote, "bytes": size, "accessed_at": at,
    }
