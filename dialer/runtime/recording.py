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

Two channels: where the call allows it, the runtime also records the lead's leg twice from snoop
channels, what the lead says (`<recording>-lead`, spy in) and what the lead hears
(`<recording>-agent`, spy out: the agent, and every prompt played into the call). Handed here
with the call's `legs`, they are archived as ONE two-channel recording under the call's recording
id (agent left, lead right, `channel_layout = agent,lead`), and the mixed bridge recording is then
dropped from the spool. If the legs cannot be fetched or stored, the mixed recording is archived
as before: a call is never left without its recording for want of its second channel. Legs left
in the spool by a controller that died are deleted by the sweep once their call's mixed
recording is archived (the mixed one is the complete record).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink
from crm_bridge.store import CrmStore
from dialer.ari.dispatch import Route
from dialer.ari.errors import Conflict
from dialer.ari.models import Channel, LiveRecording, StoredRecording
from dialer.runtime.ids import Prefix, owner_of
from dialer.runtime.outage import Outage
from recordings.archive import ArchivedRecording, StoredRecordingSource, archive_legs, archive_recording
from recordings.crypto import KekProvider

log = structlog.get_logger(__name__)

RECORDING_SUFFIX = "-recording"
# Temporary files of an interrupted write older than this are debris, not a write in progress.
STALE_PARTIAL_SECONDS = 3600.0


class RecordingSpool(StoredRecordingSource, Protocol):
    """Asterisk's stored recordings, over ARI."""

    async def list_stored_recordings(self) -> tuple[StoredRecording, ...]: ...


LEG_SIDES = ("agent", "lead")  # left and right of a two-channel recording


def leg_names(recording: str) -> tuple[str, str]:
    """The stored recordings of a call's two sides (agent, lead), beside its mixed `recording`."""
    return f"{recording}-agent", f"{recording}-lead"


def leg_of(name: str) -> str | None:
    """The mixed recording a stored leg recording belongs to, or None when `name` is not a leg."""
    for side in LEG_SIDES:
        mixed = name.removesuffix(f"-{side}")
        if mixed != name and call_of(mixed) is not None:
            return mixed
    return None


class SideRecorder(Protocol):
    """The ARI calls that record a call's two sides."""

    async def snoop(self, channel_id: str, snoop_id: str, *, spy: str = "none", whisper: str = "none",
                    app: str | None = None, app_args: Sequence[str] | None = None) -> Channel | None: ...

    async def record_channel(self, channel_id: str, name: str, *, format: str = "wav",
                             max_duration_seconds: int = 0, max_silence_seconds: int = 0, if_exists: str = "fail",
                             beep: bool = False, terminate_on: str = "none") -> LiveRecording: ...


async def record_sides(ari: SideRecorder, app: str, call_id: str, recording: str, channel_id: str, *,
                       channel_is: str, route: Route | None, log: Any) -> tuple[str, str] | None:
    """Record a call's two sides apart, from two snoops on ONE leg in its bridge (`channel_id`,
    whose side `channel_is`: "agent" or "lead"): what that leg says (spy in) is its side, what
    it hears (spy out: the other party, and every prompt played into the call) is the other's.
    The leg recordings' names (agent, lead), or None when they could not start: best effort,
    the bridge's mixed recording is the call's record whatever happens here."""
    names = dict(zip(LEG_SIDES, leg_names(recording), strict=True))
    other = "lead" if channel_is == "agent" else "agent"
    try:
        for side, spy in ((channel_is, "in"), (other, "out")):
            snoop = f"{call_id}-snoop-{side}"
            if route is not None:
                route.add_channel(snoop)  # its events are the call's (which ignores them)
            await ari.snoop(channel_id, snoop, spy=spy, app=app, app_args=["recording-side"])
            # The snoop enters the app a moment after it is made; recording it before is refused (409).
            for attempt in range(10):
                try:
                    await ari.record_channel(snoop, names[side], format="wav", if_exists="overwrite")
                    break
                except Conflict:
                    if attempt == 9:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
    except Exception as error:
        log.warning("recording_sides_not_started", error=repr(error))
        return None
    return names["agent"], names["lead"]


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
        self, name: str, *, call_id: str, lead_id: str | None, line_of_business: str | None = None,
        legs: tuple[str, str] | None = None,
    ) -> bool:
        """Archive the call's recording `name` and write its CRM row; False when a step failed
        (the spool copy stays, and the sweep tries again). With `legs` (the agent's and the
        lead's side), two channels under the same recording id; the mixed one if they fail."""
        if name in self._in_flight:
            return False
        self._in_flight.add(name)
        try:
            archived = await self._two_channels(name, legs, call_id) if legs else None
            if archived is None:
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

    async def _two_channels(self, name: str, legs: tuple[str, str], call_id: str) -> ArchivedRecording | None:
        agent, lead = legs
        try:
            # Asterisk's copies of the legs go once the two-channel file is stored; the mixed one
            # stays until the row is durable too (the caller deletes it).
            return await archive_legs(self.source, agent, lead, self.archive_dir, recording_id=name,
                                      keyring=self.keyring, attempts=5)
        except Exception as error:
            log.warning("recording_legs_not_archived", recording=name, call_id=call_id, error=repr(error))
            return None

    async def _drop_stale_legs(self, names: set[str], current: set[str]) -> None:
        """Legs whose mixed recording is archived already (gone from the spool) and whose call is over."""
        for name in names:
            mixed = leg_of(name)
            if mixed is None or mixed in names or mixed in self._in_flight or call_of(mixed) in current:
                continue
            try:
                await self.source.delete_stored_recording(name)
            except Exception as error:
                log.debug("stale_leg_not_deleted", recording=name, error=repr(error))

    async def sweep(self, live: Callable[[], set[str]]) -> int:
        """Archive every stored recording of ours that no live call (`live()`: call ids) is
        still recording; the number archived."""
        stored = await self.source.list_stored_recordings()
        waiting = [(r.name, call_id) for r in stored if (call_id := call_of(r.name)) is not None]
        current = live()
        waiting = [(name, call_id) for name, call_id in waiting
                   if call_id not in current and name not in self._in_flight]
        self.pending = len(waiting)
        names = {recording.name for recording in stored}
        archived = 0
        for name, call_id in waiting:
            lead_id, line_of_business = await self._context(call_id)
            # A dead controller's call: its two sides too, when both are there.
            legs = leg_names(name)
            if await self.archive(name, call_id=call_id, lead_id=lead_id, line_of_business=line_of_business,
                                  legs=legs if all(leg in names for leg in legs) else None):
                archived += 1
                self.pending -= 1
                names.discard(name)
        await self._drop_stale_legs(names, current)
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
