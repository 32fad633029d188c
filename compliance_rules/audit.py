"""The audit seam: every decision, allowed or blocked, is handed to an `AuditSink`.

The durable implementation (an outbox feeding the `compliance_decisions` table) lives in
`crm_bridge`; the columns are exactly the keys of `Decision.to_record()`. The gate treats a sink
that raises as "not recorded" and then reports every decision of the batch as blocked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from compliance_rules.model import Decision


class AuditSink(Protocol):
    """Durably records decisions; returns only once they can no longer be lost."""

    async def record(self, decisions: Sequence[Decision]) -> None: ...


class MemoryAuditSink:
    """Keeps decisions in a list (unit tests, and the CLI when no audit log is given)."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.batches = 0

    async def record(self, decisions: Sequence[Decision]) -> None:
        self.decisions.extend(decisions)
        self.batches += 1


class JsonLinesAuditSink:
    """Appends one JSON record per decision to a file and fsyncs it (CLI `--audit-log`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def record(self, decisions: Sequence[Decision]) -> None:
        lines = "".join(json.dumps(d.to_record(), sort_keys=True) + "\n" for d in decisions)
        await asyncio.to_thread(self._append, lines)

    def _append(self, lines: str) -> None:
        import os

        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
