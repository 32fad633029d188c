"""The scheduled retention purge of `dialer serve`: recordings past their `retain_until` and not
under legal hold are destroyed (data key first, then the file; the row stays as a tombstone with
an audit entry), by `recordings.lifecycle.purge`, the same code as `dialer recording purge`.

It runs a minute after start and then every `[recordings] purge_every_hours`. A legal hold set
while a purge runs wins (the purge locks the row and checks it again). PostgreSQL out of reach:
the run is skipped and said once, and the next one catches up (nothing expires twice). Several
dialers against one CRM may all run it: the row lock makes each recording go once.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from crm_bridge.pg import DatabaseUnavailable, connect
from dialer.runtime.outage import Outage
from recordings.lifecycle import PurgeOutcome, purge
from recordings.storage import LocalStorage

log = structlog.get_logger(__name__)

FIRST_RUN_DELAY_SECONDS = 60.0
BATCH = 1000  # recordings per pass; a pass that fills it is followed at once by another


def purger_name() -> str:
    """Who the tombstones and audit entries name: this service on this host."""
    return f"dialer-serve@{socket.gethostname()} (scheduled retention purge)"


@dataclass
class RetentionPurge:
    pg_dsn: str
    archive_dir: Path
    every_seconds: float
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    purged_total: int = 0
    last_run_at: float | None = None
    """Epoch seconds of the last completed run (None before the first): for /metrics."""

    async def run_once(self) -> list[PurgeOutcome]:
        """One scheduled run: every recording due, in batches; the ones purged."""
        storage = LocalStorage(self.archive_dir)
        purged: list[PurgeOutcome] = []
        conn = await connect(self.pg_dsn)
        try:
            while True:
                outcomes = await purge(conn, storage, now=self.clock(), by=purger_name(), limit=BATCH)
                done = [outcome for outcome in outcomes if outcome.purged]
                purged += done
                if len(outcomes) < BATCH or not done:
                    break
        finally:
            await conn.close()
        self.purged_total += len(purged)
        self.last_run_at = time.time()
        if purged:
            log.warning("recordings_purged", count=len(purged), by=purger_name())
        return purged

    async def run(self, first_delay: float = FIRST_RUN_DELAY_SECONDS) -> None:
        """For as long as the dialer runs (nothing when `every_seconds` is 0)."""
        if self.every_seconds <= 0:
            return
        outage = Outage("retention_purge_skipped")
        await asyncio.sleep(first_delay)
        while True:
            try:
                await self.run_once()
                outage.recovered(log)
            except (DatabaseUnavailable, ConnectionError, OSError, TimeoutError) as error:
                outage.failed(log, error)
            except Exception:
                log.exception("retention_purge_failed")
            await asyncio.sleep(self.every_seconds)
