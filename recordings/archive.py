"""Collect a finished call recording from Asterisk into the agency's archive and describe it.

The file is fetched over ARI (`GET /recordings/stored/{name}/file`), so Asterisk may run on
another host; transcoded to Opus in Ogg (`recordings.transcode`); sealed in segments under a
fresh data key wrapped by the keyring's current KEK (`recordings.segments`,
`recordings.envelope`); stored under `YYYY/MM/DD/` as `<id>.opus.sealed` beside its wrapped key
`<id>.dek`; and removed from Asterisk's spool once safely stored.

A recording is never lost to the codec: when ffmpeg is missing or refuses the audio, the WAV
as recorded is sealed instead (format `wav`), and the failure is logged.

Two legs (agent and lead recorded apart, e.g. from snoop channels) are stored as one
two-channel recording, agent on the left, lead on the right (`archive_legs`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from recordings.crypto import ARCHIVE_KEYS_FILE, KekProvider, Keyring, RecordingCryptoError, open_sealed
from recordings.crypto import MAGIC as FORMAT1_MAGIC
from recordings.envelope import WrappedDataKey, new_data_key, unwrap_data_key, wrap_data_key
from recordings.retention import DEFAULT_POLICY, RetentionPolicy
from recordings.segments import MAGIC as FORMAT2_MAGIC
from recordings.segments import SealedReader, SealingWriter
from recordings.storage import LocalStorage, RecordingStorage, file_uri_path
from recordings.transcode import (
    AudioFormat,
    PcmSource,
    TranscodeError,
    close_quietly,
    encode,
    pcm_chunks,
    wav_header,
)

log = structlog.get_logger(__name__)

RETENTION_YEARS = 10
"""Kept for callers of the first version; the period now comes from `recordings.retention`."""
SEALING = "segmented-aes256gcm-v2"


class StoredRecordingSource(Protocol):
    async def stored_recording_file(self, name: str) -> bytes: ...

    async def delete_stored_recording(self, name: str) -> None: ...


@dataclass(frozen=True)
class ArchivedRecording:
    recording_id: str
    path: Path
    format: str
    size_bytes: int
    sha256: str
    """Of the stored audio itself (before sealing), so a copy can be verified after opening."""
    duration_seconds: float | None
    recorded_at: datetime
    encryption_key_id: str | None
    """The KEK that wraps the recording's data key."""
    channels: int = 1
    channel_layout: str = "mixed"
    storage_uri: str = ""

    def to_record(self, *, call_id: str | None, lead_id: str | None, line_of_business: str | None = None,
                  policy: RetentionPolicy = DEFAULT_POLICY) -> dict[str, object]:
        """The CRM bridge's `recording` record; `retain_until` from the line of business."""
        return {
            "recording_id": self.recording_id,
            "call_id": call_id,
            "lead_id": lead_id,
            "storage_uri": self.storage_uri or self.path.as_uri(),
            "format": self.format,
            "duration_seconds": self.duration_seconds,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "encryption_key_id": self.encryption_key_id,
            "retain_until": policy.retain_until(self.recorded_at, line_of_business),
            "recorded_at": self.recorded_at,
            "channels": self.channels,
            "channel_layout": self.channel_layout,
            "line_of_business": line_of_business,
        }


def audio_key(recording_id: str, recorded_at: datetime, fmt: str, *, sealed: bool = True) -> str:
    return f"{recorded_at:%Y/%m/%d}/{recording_id}.{fmt}" + (".sealed" if sealed else "")


def data_key_key(audio: str, recording_id: str) -> str:
    """Where the wrapped data key of the recording stored at `audio` is kept."""
    folder = audio.rpartition("/")[0]
    return f"{folder}/{recording_id}.dek" if folder else f"{recording_id}.dek"


_NOTED = threading.Lock()


def note_kek(storage: RecordingStorage, kek_id: str) -> None:
    """Add `kek_id` to the archive's list of keys it needs (checked at start)."""
    with _NOTED:  # calls archived at once: one read-modify-write at a time
        _note_kek(storage, kek_id)


def _note_kek(storage: RecordingStorage, kek_id: str) -> None:
    try:
        listed = set(json.loads(storage.get_small(ARCHIVE_KEYS_FILE))["kek_ids"])
    except FileNotFoundError:
        listed = set()
    except (ValueError, KeyError, TypeError):
        raise RecordingCryptoError(f"the archive's {ARCHIVE_KEYS_FILE} is damaged") from None
    if kek_id not in listed:
        storage.put_small(ARCHIVE_KEYS_FILE, json.dumps({"kek_ids": sorted(listed | {kek_id})}, indent=1).encode())


def seal_into_archive(
    storage: RecordingStorage,
    provider: KekProvider | None,
    recording_id: str,
    sources: Sequence[PcmSource],
    *,
    recorded_at: datetime,
    layout: Sequence[str] = ("mixed",),
    fmt: AudioFormat = AudioFormat.OPUS,
) -> ArchivedRecording:
    """Transcode `sources` (one recording, or two legs as two channels) and store them sealed.

    Blocking (ffmpeg, disk): run it in a thread. Memory stays constant whatever the length.
    With `provider` None the audio is stored in the clear (tests of the archive only).
    """
    try:
        return _store(storage, provider, recording_id, sources, recorded_at, layout, fmt)
    except TranscodeError as error:
        if fmt is AudioFormat.WAV or len(sources) != 1:
            raise
        # Never lose a recording to the codec: keep the WAV as recorded.
        log.error("recording_not_transcoded", recording=recording_id, error=str(error), archived_as="wav")
        return _store(storage, provider, recording_id, sources, recorded_at, layout, AudioFormat.WAV)


def _wav_chunks(source: PcmSource) -> Iterable[bytes]:
    info = source.info
    yield wav_header(info.rate, info.channels, info.frames)
    yield from pcm_chunks(source)


def _store(storage: RecordingStorage, provider: KekProvider | None, recording_id: str, sources: Sequence[PcmSource],
           recorded_at: datetime, layout: Sequence[str], fmt: AudioFormat) -> ArchivedRecording:
    rate = max(source.info.rate for source in sources)
    channels = 2 if len(sources) == 2 else sources[0].info.channels
    frames = max(round(source.info.seconds * rate) for source in sources)
    chunks = encode(sources, fmt) if fmt is not AudioFormat.WAV else _wav_chunks(sources[0])
    key = audio_key(recording_id, recorded_at, fmt.value, sealed=provider is not None)
    metadata: dict[str, object] = {"format": fmt.value, "channels": channels, "layout": list(layout), "rate": rate,
                                   "frames": frames}
    writer = storage.create(key)
    kek_id: str | None = None
    dek = ""
    try:
        if provider is None:
            digest, size = hashlib.sha256(), 0
            for chunk in chunks:
                writer.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            sha256 = digest.hexdigest()
        else:
            data_key = new_data_key()
            wrapped = wrap_data_key(provider, recording_id, data_key)
            kek_id = wrapped.kek_id
            note_kek(storage, kek_id)
            # The wrapped key is stored first: a crash before the audio is committed leaves a
            # lone `.dek` (reported by verify), never audio nobody can open.
            dek = data_key_key(key, recording_id)
            storage.put_small(dek, wrapped.to_bytes())
            sealer = SealingWriter(writer, data_key, recording_id, metadata)
            for chunk in chunks:
                sealer.write(chunk)
            sealer.close()
            sha256, size = sealer.plaintext_sha256.hexdigest(), sealer.plaintext_bytes
        writer.commit()
    except BaseException:
        close_quietly(chunks)
        writer.abort()
        if dek:
            storage.delete(dek)
        raise
    path = file_uri_path(storage.uri(key))
    return ArchivedRecording(
        recording_id=recording_id, path=path, format=fmt.value, size_bytes=size, sha256=sha256,
        duration_seconds=frames / rate if rate else None, recorded_at=recorded_at, encryption_key_id=kek_id,
        channels=channels, channel_layout=",".join(layout), storage_uri=storage.uri(key),
    )


async def _fetch(source: StoredRecordingSource, name: str, attempts: int) -> bytes:
    for attempt in range(attempts):
        try:
            return await source.stored_recording_file(name)
        except Exception:
            # Asterisk lists the file once the recording has stopped; right after the call
            # ends it may not be there yet.
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def archive_recording(
    source: StoredRecordingSource,
    name: str,
    archive_dir: Path,
    *,
    keyring: KekProvider | None = None,
    recorded_at: datetime | None = None,
    fmt: str = AudioFormat.OPUS.value,
    attempts: int = 10,
    storage: RecordingStorage | None = None,
    delete: bool = True,
) -> ArchivedRecording:
    """Fetch `name` (a mixed recording) from Asterisk, transcode and seal it (unless `keyring`
    is None), store it durably, then delete Asterisk's copy (unless `delete` is False: the
    caller deletes it once the recording's CRM row is durable too)."""
    recorded_at = recorded_at or datetime.now(UTC)
    data = await _fetch(source, name, attempts)
    store = storage or LocalStorage(archive_dir)
    archived = await asyncio.to_thread(seal_into_archive, store, keyring, name, [PcmSource.from_bytes(data)],
                                       recorded_at=recorded_at, fmt=AudioFormat(fmt))
    if delete:
        await source.delete_stored_recording(name)
    return archived


async def archive_legs(
    source: StoredRecordingSource,
    agent_leg: str,
    lead_leg: str,
    archive_dir: Path,
    *,
    recording_id: str,
    keyring: KekProvider | None,
    recorded_at: datetime | None = None,
    attempts: int = 10,
    storage: RecordingStorage | None = None,
) -> ArchivedRecording:
    """Fetch the agent's and the lead's leg (ARI stored recordings, e.g. recorded from snoop
    channels `spy=in` on each leg) and archive them as ONE two-channel recording
    `recording_id`: agent left, lead right. Asterisk's copies are deleted once it is stored."""
    recorded_at = recorded_at or datetime.now(UTC)
    agent, lead = await asyncio.gather(_fetch(source, agent_leg, attempts), _fetch(source, lead_leg, attempts))
    store = storage or LocalStorage(archive_dir)
    archived = await asyncio.to_thread(
        seal_into_archive, store, keyring, recording_id, [PcmSource.from_bytes(agent), PcmSource.from_bytes(lead)],
        recorded_at=recorded_at, layout=("agent", "lead"))
    await asyncio.gather(source.delete_stored_recording(agent_leg), source.delete_stored_recording(lead_leg))
    return archived


def archived_path(storage_uri: str) -> Path:
    """The archived file a `recordings.storage_uri` names (a file:// URI, or a plain path)."""
    return file_uri_path(storage_uri)


def _recording_id_of(path: Path) -> str:
    return path.name.split(".")[0]


def read_recording(path: Path, keyring: Keyring, name: str | None = None) -> bytes:
    """The stored audio of an archived recording, whole (opened when sealed, any format).

    For tests and small tools: it holds the whole file in memory; `recordings.reader` streams.
    """
    recording_id = name or _recording_id_of(path)
    with path.open("rb") as file:
        head = file.read(len(FORMAT2_MAGIC))
    if head == FORMAT2_MAGIC:
        storage = LocalStorage(path.parent)
        wrapped = WrappedDataKey.from_bytes(storage.get_small(f"{recording_id}.dek"))
        sealed = storage.open(path.name)
        try:
            reader = SealedReader(sealed, unwrap_data_key(keyring, wrapped, recording_id), recording_id)
            return b"".join(reader.iter_range())
        finally:
            sealed.close()
    blob = path.read_bytes()
    if head == FORMAT1_MAGIC:
        return open_sealed(blob, keyring, recording_id)
    if path.name.endswith(".sealed"):
        raise RecordingCryptoError(f"{path} is not a sealed recording")
    return blob
