"""The audio endpoint over real archive files and PostgreSQL: whole, by Range, converted, audited."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from compliance_rules.store import DncStore
from crm_bridge.migrate import migrate
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore, TokenRole
from dialer.api.http import ApiDependencies
from dialer.app import build_app
from recordings.archive import ArchivedRecording, read_recording, seal_into_archive
from recordings.crypto import Keyring
from recordings.lifecycle import purge
from recordings.reader import RecordingReader
from recordings.segments import OVERHEAD, SEGMENT_SIZE
from recordings.storage import LocalStorage
from recordings.transcode import PcmSource
from tests.recordings.conftest import RATE, call_audio, samples_of, tone, wav_bytes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@dataclass
class Api:
    client: TestClient[Any, Any]
    store: CrmStore
    outbox: Outbox
    keyring: Keyring
    archive: LocalStorage
    token: str
    supervisor: str

    async def add(self, seconds: float = 40.0, legs: bool = False) -> ArchivedRecording:
        recording_id = f"rec-{uuid.uuid4().hex[:12]}"
        sources = ([PcmSource.from_bytes(wav_bytes(tone(seconds, 440))),
                    PcmSource.from_bytes(wav_bytes(tone(seconds, 1000)))] if legs
                   else [PcmSource.from_bytes(wav_bytes(call_audio(seconds)))])
        archived = seal_into_archive(self.archive, self.keyring, recording_id, sources,
                                     recorded_at=datetime(2026, 1, 5, tzinfo=UTC),
                                     layout=("agent", "lead") if legs else ("mixed",))
        await self.outbox.put("recording", archived.to_record(call_id=f"call-{recording_id}", lead_id=None,
                                                              line_of_business="life"))
        assert await self.outbox.flush(10)
        return archived

    async def get(self, path: str, token: str | None = None, **headers: str) -> tuple[int, bytes, Any]:
        response = await self.client.get(path, headers={"Authorization": f"Bearer {token or self.token}", **headers})
        return response.status, await response.read(), response.headers

    async def accesses(self, recording_id: str) -> list[dict[str, Any]]:
        assert await self.outbox.flush(10)
        return await self.store.list_recording_accesses(recording_id)


@pytest.fixture
async def api(pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Api]:
    connection = await asyncpg.connect(pg_dsn)
    await migrate(connection)
    await connection.close()
    store = await CrmStore.open(pg_dsn)
    redis = aioredis.from_url(redis_url)
    keyring = Keyring.load_or_create(tmp_path / "keys")
    archive = LocalStorage(tmp_path / "archive")
    async with Outbox(tmp_path / "state", pg_dsn, poll_interval=0.1) as outbox:
        crm = (await store.issue_token(TokenRole.CRM, label="test crm")).secret
        supervisor = (await store.issue_token(TokenRole.SUPERVISOR, label="test supervisor")).secret
        app = build_app(ApiDependencies(store=store, records=outbox, dnc=DncStore(redis, redis_prefix)),
                        recordings=RecordingReader(archive.root, keyring))
        async with TestClient(TestServer(app)) as client:
            yield Api(client, store, outbox, keyring, archive, crm, supervisor)
    await store.close()
    await redis.aclose()


async def test_the_stored_audio_whole_and_by_range_each_hand_out_audited(api: Api) -> None:
    recording = await api.add(120.0)
    stored = read_recording(recording.path, api.keyring)
    assert len(stored) > 2 * SEGMENT_SIZE
    url = f"/v1/recordings/{recording.recording_id}/audio"

    status, body, headers = await api.get(url, api.supervisor)
    assert status == 200 and body == stored and headers["Content-Type"] == "audio/ogg"
    assert hashlib.sha256(body).hexdigest() == recording.sha256 == headers["X-Content-SHA256"]
    assert headers["Accept-Ranges"] == "bytes" and int(headers["Content-Length"]) == len(stored)

    # Ranges across segment boundaries, open-ended and suffix ranges: exactly those bytes.
    size = len(stored)
    for asked, start, end in [(f"bytes=100-{SEGMENT_SIZE + 99}", 100, SEGMENT_SIZE + 100),
                              (f"bytes={size - 10}-", size - 10, size), ("bytes=-500", size - 500, size),
                              ("bytes=0-0", 0, 1), (f"bytes=5-{size + 1000}", 5, size)]:
        status, body, headers = await api.get(url, Range=asked)
        assert status == 206, asked
        assert body == stored[start:end] and headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
    for bad in (f"bytes={size}-", "bytes=9-3", "items=0-1", "bytes=0-1,5-6"):
        status, _, headers = await api.get(url, Range=bad)
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}", bad

    accesses = await api.accesses(recording.recording_id)
    assert [a["bytes"] for a in accesses] == [size, SEGMENT_SIZE, 10, 500, 1, size - 5]
    assert {(a["channel"], a["call_id"]) for a in accesses} == {("http", f"call-{recording.recording_id}")}
    assert accesses[0]["role"] == "supervisor"


async def test_wav_and_a_mono_mix_on_request_also_by_range(api: Api) -> None:
    recording = await api.add(6.0, legs=True)
    url = f"/v1/recordings/{recording.recording_id}/audio"
    status, stereo, headers = await api.get(f"{url}?format=wav")
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    samples, rate = samples_of(stereo)
    assert rate == RATE and samples.shape == (6 * RATE, 2) and int(headers["Content-Length"]) == len(stereo)
    status, mono, _ = await api.get(f"{url}?format=wav&mix=mono")
    assert status == 200 and samples_of(mono)[0].shape == (6 * RATE, 1)
    status, part, headers = await api.get(f"{url}?format=wav&mix=mono", Range="bytes=44-8043")
    assert status == 206 and part == mono[44:8044]
    status, mp3, headers = await api.get(f"{url}?format=mp3")
    assert status == 200 and headers["Content-Type"] == "audio/mpeg" and headers["Accept-Ranges"] == "none"
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF
    for query, field in (("format=flac", "format"), ("mix=stereo", "mix"), ("speed=2", "speed")):
        response = await api.client.get(f"{url}?{query}", headers={"Authorization": f"Bearer {api.token}"})
        assert response.status == 422 and (await response.json())["field"] == field


async def test_a_flipped_byte_in_any_segment_is_refused_whole_and_by_range(api: Api) -> None:
    recording = await api.add(240.0)  # a few segments of Opus
    url = f"/v1/recordings/{recording.recording_id}/audio"
    clean = recording.path.read_bytes()
    stored = read_recording(recording.path, api.keyring)
    segments = -(-len(stored) // SEGMENT_SIZE)
    assert segments >= 3
    header = len(clean) - (len(stored) + segments * OVERHEAD)
    for segment in range(segments):
        damaged = bytearray(clean)
        damaged[header + segment * (SEGMENT_SIZE + OVERHEAD) + 40] ^= 1
        recording.path.write_bytes(bytes(damaged))
        first = segment * SEGMENT_SIZE
        for headers in ({}, {"Range": f"bytes={first + 10}-{first + 20}"}):
            response = await api.client.get(url, headers={"Authorization": f"Bearer {api.token}", **headers})
            assert response.status == 409, (segment, headers)
            assert (await response.json())["error"] == "recording_integrity_failed"
        # A range in another segment still plays: one damaged segment does not take the call.
        other = ((segment + 1) % segments) * SEGMENT_SIZE
        status, body, _ = await api.get(url, Range=f"bytes={other}-{other + 99}")
        assert status == 206 and body == stored[other : other + 100]
    recording.path.write_bytes(clean)
    assert (await api.get(url))[0] == 200
    assert len(await api.accesses(recording.recording_id)) == segments + 1  # refusals hand nothing out


async def test_a_purged_recording_is_gone_and_says_so(api: Api, pg_dsn: str) -> None:
    recording = await api.add(2.0)
    connection = await asyncpg.connect(pg_dsn)
    try:
        outcomes = await purge(connection, api.archive, now=datetime(2031, 2, 1, tzinfo=UTC), by="ops",
                               recording_ids=[recording.recording_id])
    finally:
        await connection.close()
    assert outcomes[0].purged
    response = await api.client.get(f"/v1/recordings/{recording.recording_id}/audio",
                                    headers={"Authorization": f"Bearer {api.token}"})
    assert response.status == 410 and (await response.json())["error"] == "recording_purged"
    response = await api.client.get(f"/v1/recordings/{recording.recording_id}",
                                    headers={"Authorization": f"Bearer {api.token}"})
    row = await response.json()
    assert row["purged_at"].startswith("2031-02-01") and row["audio_url"] is None and row["purged_by"] == "ops"


async def test_an_agent_hears_its_own_calls_recordings_only_and_each_hand_out_is_audited(api: Api) -> None:
    """The console's call history plays the agent's own calls: the same audited hand-out as a
    supervisor's; another agent's recording is not even said to exist, and agents cannot search."""
    recording = await api.add(10.0)
    ann, bob = f"ann-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    await api.outbox.put_many([
        ("agent_upsert", {"agent_id": ann, "name": "Ann"}), ("agent_upsert", {"agent_id": bob, "name": "Bob"}),
        ("call", {"call_id": f"call-{recording.recording_id}", "version": 1, "direction": "outbound", "agent_id": ann, "lead_number": "+12125550142",
                  "requested_at": datetime.now(UTC), "ended_at": datetime.now(UTC), "outcome": "answered"})])
    assert await api.outbox.flush(10)
    ann_token = (await api.store.issue_token(TokenRole.AGENT, agent_id=ann)).secret
    bob_token = (await api.store.issue_token(TokenRole.AGENT, agent_id=bob)).secret
    url = f"/v1/recordings/{recording.recording_id}"
    status, audio, headers = await api.get(f"{url}/audio", ann_token)
    assert status == 200 and headers["Content-Type"] == "audio/ogg"
    assert hashlib.sha256(audio).hexdigest() == recording.sha256
    assert (await api.get(url, ann_token))[0] == 200
    for path in (url, f"{url}/audio"):
        status, body, _ = await api.get(path, bob_token)
        assert status == 404 and b"recording_not_found" in body
    assert (await api.get(f"/v1/recordings?call_id=call-{recording.recording_id}", ann_token))[0] == 403
    (access,) = await api.accesses(recording.recording_id)
    assert (access["role"], access["agent_id"], access["bytes"]) == ("agent", ann, len(audio))
