"""Call snapshots written to the CRM behind the call flow, in batches.

A call emits a snapshot on every state change. Awaiting each one's durable write (an fsync in
the outbox) between two bridge operations put the disk in the path that decides whether a
lead is connected within 2 seconds. So snapshots are handed to this writer, which puts them
into the outbox in batches (one fsync for many). A snapshot still in memory when the process
dies is superseded by a later one or by the reconciliation on restart (calls left open are
closed with an outcome); dispositions, opt-outs and recordings are still written durably
before their callers go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import structlog

from crm_bridge.outbox import RecordSink

log = structlog.get_logger(__name__)

MAX_BATCH = 500
RETRY_SECONDS = 1.0


class SnapshotWriter:
    """`submit()` never waits; `run()` writes in order; `drain()` waits until all are written."""

    def __init__(self, records: RecordSink) -> None:
        self._records = records
        self._queue: asyncio.Queue[tuple[str, Mapping[str, object]]] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, kind: str, record: Mapping[str, object]) -> None:
        self._idle.clear()
        self._queue.put_nowait((kind, record))

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            if self._queue.empty():
                self._idle.set()

    async def _write(self, batch: list[tuple[str, Mapping[str, object]]]) -> None:
        while True:
            try:
                await self._records.put_many(batch)
                return
            except ValueError:
                # A record the outbox refuses (InvalidRecord) must not take the others with it.
                for item in batch:
                    try:
                        await self._records.put(*item)
                    except ValueError as error:
                        log.error("snapshot_refused", kind=item[0], error=str(error))
                return
            except Exception as error:  # the local disk: keep the snapshots and try again
                log.error("snapshot_write_failed", error=repr(error), batch=len(batch))
                await asyncio.sleep(RETRY_SECONDS)

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - a budget, like Outbox.flush
        """Wait until every submitted snapshot is in the outbox; False if `timeout` passed first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
                return True
        return False
