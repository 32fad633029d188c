"""The audit seam: every decision, allowed or blocked, is handed to an `AuditSink`.

The durable implementation (the CRM outbox feeding the `compliance_decisions` table) is the
runtime's (`dialer.runtime.gate.OutboxAuditSink`); the columns are exactly the keys of `Decision.to_record()`. The gate treats a sink
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


class CoalescingAuditSink:
    """Batches decisions recorded concurrently (single click-to-call checks from many tasks) into
    one call of the inner sink; every caller returns only once its batch was recorded, and gets
    the inner sink's error if it failed (the gate then blocks those decisions)."""

    def __init__(self, inner: AuditSink, *, max_batch: int = 500, max_delay: float = 0.005) -> None:
        self.inner = inner
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._pending: list[Decision] = []
        self._flushed: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # flushes in flight, owned here

    async def record(self, decisions: Sequence[Decision]) -> None:
        loop = asyncio.get_running_loop()
        if self._flushed is None:
            self._flushed = loop.create_future()
            self._timer = loop.call_later(self.max_delay, self._start_flush)
        flushed = self._flushed
        self._pending.extend(decisions)
        if len(self._pending) >= self.max_batch:
            self._start_flush()
        await asyncio.shield(flushed)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, flushed = self._pending, self._flushed
        self._pending, self._flushed = [], None
        if flushed is None:
            return
        task = asyncio.get_running_loop().create_task(self._flush(batch, flushed), name="audit-flush")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[Decision], flushed: asyncio.Future[None]) -> None:
        try:
            await self.inner.record(batch)
        except Exception as error:
            flushed.set_exception(error)
        else:
            flushed.set_result(None)


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


class FanOutAuditSink:
    """Records each batch in every sink, in order; any failure fails the batch (fail closed)."""

    def __init__(self, sinks: Sequence[AuditSink]) -> None:
        self._sinks = tuple(sinks)

    async def record(self, decisions: Sequence[Decision]) -> None:
        for sink in self._sinks:
            await sink.record(decisions)
