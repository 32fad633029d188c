"""An in-memory `crm_bridge.outbox.RecordSink` for unit tests of code that writes CRM records.

It validates every record exactly as the real outbox does (so a wrong shape fails the test)
and keeps the normalized records in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crm_bridge.records import validate


class MemorySink:
    """Collects validated records: `sink.records` is a list of (kind, normalized record)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    async def put(self, kind: str, record: Mapping[str, object]) -> int:
        (outbox_id,) = await self.put_many([(kind, record)])
        return outbox_id

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]:
        normalized = [(kind, validate(kind, record)) for kind, record in items]  # all or none
        first = len(self.records) + 1
        self.records.extend(normalized)
        return list(range(first, first + len(normalized)))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [record for record_kind, record in self.records if record_kind == kind]
