"""The one place a call's recording goes from Asterisk's spool to the archive and the CRM.

Every kind of call records its per-call bridge under a name the call chose; when the call
ends, its runner hands that name here: the file is fetched over ARI, sealed and stored
(`recordings.archive`), and its `recordings` row written through the outbox, linked to the
call and the lead (42 CFR 422.2274(g)(2)(ii): Medicare marketing calls are recorded in their
entirety and kept for 10 years).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink
from recordings.archive import StoredRecordingSource, archive_recording
from recordings.crypto import Keyring

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RecordingArchiver:
    source: StoredRecordingSource
    records: RecordSink
    archive_dir: Path
    keyring: Keyring | None = None
    """Seals archived recordings; None stores them in the clear (tests of the archive only)."""

    async def archive(self, name: str, *, call_id: str, lead_id: str | None) -> None:
        """Archive the call's recording `name` and write its CRM row."""
        try:
            archived = await archive_recording(self.source, name, self.archive_dir, keyring=self.keyring)
        except Exception as error:
            # The file stays in Asterisk's spool; the call row still names it.
            log.error("recording_not_archived", recording=name, call_id=call_id, error=repr(error))
            return
        await self.records.put(RecordKind.RECORDING, archived.to_record(call_id=call_id, lead_id=lead_id))
