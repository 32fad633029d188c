"""The one place a call's recording goes from Asterisk's spool to the archive and the CRM.

Every kind of call records its per-call bridge under a name the call chose
(`<call id>-recording`); when the call ends, its runner hands that name here: the file is
fetched over ARI, transcoded, sealed and stored (`recordings.archive`), its `recordings` row is
written through the outbox, linked to the call and the lead, with the retention its line of
business requires (42 CFR 422.2274(g)(2)(ii): Medicare marketing calls recorded in their
entirety; 42 CFR 422.504(d): kept 10 years).

Nothing is lost when a step fails (a full archive disk, a full outbox disk, a key missing, the
controller killed mid-call): Asterisk's copy in its spool is the pending state. It is deleted
only once the sealed file and the CRM row are both durable; until then `sweep()` (at start and
every minute) finds every stored recording of ours that no live call is still recording and
archives it, again and again until it is done. Leftover temporary files of interrupted writes
are removed by the same sweep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink
from crm_bridge.store import CrmStore
from dialer.ari.models import StoredRecording
from dialer.runtime.ids import Prefix, owner_of
from dialer.runtime.outage import Outage
from recordings.archive import StoredRecordingSource, archive_recording
from recordings.crypto import KekProvider

log = structlog.get_logger(__name__)

RECORDING_SUFFIX = "-recording"
# Temporary files of an interrupted write older than this are debris, not a write in progress.
STALE_PARTIAL_SECONDS = 3600.0


class RecordingSpool(StoredRecordingSource, Protocol):
    """Asterisk's stored recordings, over ARI."""

    async def list_stored_recordings(self) -> tuple[StoredRecording, ...]: ...


def recording_name(call_id: str) -> str:
    """The name a call records its bridge under (and its recording id)."""
    return f"{call_id}{RECORDING_SUFFIX}"


def call_of(name: str) -> str | None:
    """The call id a stored recording of ours belongs to, or None when it is not ours."""
    if not name.endswith(RECORDING_SUFFIX):
        return None
    call_id = name.removesuffix(RECORDING_SUFFIX)
    for prefix in (Prefix.CLICK_TO_CALL, Prefix.CAMPAIGN_CALL):
        if owner_of(call_id, prefix) == call_id:
            return call_id
    return None


@dataclass
class RecordingArchiver:
    source: RecordingSpool
    records: RecordSink
    archive_dir: Path
    keyring: KekProvider | None = None
    """Seals archived recordings; None stores them in the clear (tests of the archive only)."""
    store: CrmStore | None = None
    """Where the sweep finds a recording's call, lead and line of business."""
    pending: int = 0
    """Our recordings in Asterisk's spool that no live call records, at the last sweep."""
    _in_flight: set[str] = field(default_factory=set)

    async def archive(
        self, name: str, *, call_id: str, lead_id: str | None, line_of_business: str | None = None
    ) -> bool:
        """Archive the call's recording `name` and write its CRM row; False when a step failed
        (the spool copy stays, and the sweep tries again)."""
        if name in self._in_flight:
            return False
        self._in_flight.add(name)
        try:
            archived = await archive_recording(self.source, name, self.archive_dir, keyring=self.keyring,
                                               delete=False)
            await self.records.put(RecordKind.RECORDING, archived.to_record(
                call_id=call_id, lead_id=lead_id, line_of_business=line_of_business))
            # Both durable: only now may Asterisk's copy go.
            await self.source.delete_stored_recording(name)
        except Exception as error:
            log.error("recording_not_archived_yet", recording=name, call_id=call_id, error=repr(error))
            return False
        finally:
            self._in_flight.discard(name)
        return True

    async def sweep(self, live: Callable[[], set[str]]) -> int:
        """Archive every stored recording of ours that no live call (`live()`: call ids) is
        still recording; the number archived."""
        stored = await self.source.list_stored_recordings()
        waiting = [(r.name, call_id) for r in stored if (call_id := call_of(r.name)) is not None]
        current = live()
        waiting = [(name, call_id) for name, call_id in waiting
                   if call_id not in current and name not in self._in_flight]
        self.pending = len(waiting)
        archived = 0
        for name, call_id in waiting:
            lead_id, line_of_business = await self._context(call_id)
            if await self.archive(name, call_id=call_id, lead_id=lead_id, line_of_business=line_of_business):
                archived += 1
                self.pending -= 1
        await asyncio.to_thread(self._remove_stale_partials)
        return archived

    async def _context(self, call_id: str) -> tuple[str | None, str | None]:
        if self.store is None:
            return None, None
        call = await self.store.get_call(call_id)
        if call is None:
            return None, None
        line_of_business = None
        if call.campaign_id is not None:
            campaign = await self.store.get_campaign(call.campaign_id)
            line_of_business = campaign.line_of_business if campaign is not None else None
        return call.lead_id, line_of_business

    def _remove_stale_partials(self) -> None:
        if not self.archive_dir.exists():
            return
        cutoff = time.time() - STALE_PARTIAL_SECONDS
        for partial in self.archive_dir.rglob("*.partial"):
            try:
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    log.warning("stale_partial_removed", path=str(partial))
            except OSError:
                continue

    async def run(self, live: Callable[[], set[str]], every: float = 60.0) -> None:
        """The sweep, at start and then every `every` seconds, for as long as the dialer runs."""
        outage = Outage("recording_sweep_failed")
        while True:
            try:
                archived = await self.sweep(live)
                outage.recovered(log)
                if archived:
                    log.warning("recordings_archived_by_sweep", count=archived, pending=self.pending)
            except Exception as error:
                outage.failed(log, error)
            await asyncio.sleep(every)
