"""The CRM fetches a call's recording over HTTP: listed by call and by lead, its audio opened
from the sealed archive and matching its checksum, every hand-out audited; agents refused; a
damaged or missing archive file is a clear error, never a 500 or bad audio."""

from __future__ import annotations

import hashlib
import io
import wave
from pathlib import Path

import pytest

from crm_bridge.store import TokenRole
from recordings.archive import archived_path
from tests.controller.conftest import Dialer

pytestmark = pytest.mark.integration


def _flip_last_bit(path: Path) -> None:
    sealed = path.read_bytes()
    path.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))


async def _recorded_call(dialer: Dialer) -> tuple[str, str]:
    agent_id = f"local-r-{dialer.suffix}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": "Local/2003@agent-sim"})
    lead_id = await dialer.lead("+12125561104")  # a person: answers after 1 s, talks 4 s, hangs up
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call_id = (await response.json())["call_id"]
    call = await dialer.ended_call(call_id)
    assert call.outcome is not None and call.outcome.value == "answered" and call.recording_id is not None
    return call_id, lead_id


@pytest.mark.timeout(120)
async def test_the_crm_lists_and_fetches_a_calls_recording_and_each_fetch_is_audited(dialer: Dialer) -> None:
    call_id, lead_id = await _recorded_call(dialer)

    response = await dialer.client.get(f"/v1/recordings?call_id={call_id}", headers=dialer.auth())
    assert response.status == 200
    (listed,) = (await response.json())["recordings"]
    # Two channels: the agent's side left, the lead's right (dialer.runtime.recording).
    assert (listed["call_id"], listed["lead_id"], listed["format"], listed["channels"], listed["channel_layout"]) == (
        call_id, lead_id, "opus", 2, "agent,lead")
    by_lead = await (await dialer.client.get(f"/v1/recordings?lead_id={lead_id}", headers=dialer.auth())).json()
    assert [r["recording_id"] for r in by_lead["recordings"]] == [listed["recording_id"]]
    one = await dialer.client.get(f"/v1/recordings/{listed['recording_id']}", headers=dialer.auth())
    assert one.status == 200 and (await one.json()) == listed

    supervisor = await dialer.token(TokenRole.SUPERVISOR)
    audio = await dialer.client.get(listed["audio_url"], headers=dialer.auth(supervisor))
    assert audio.status == 200 and audio.content_type == "audio/ogg"  # as archived: Opus in Ogg
    data = await audio.read()
    assert hashlib.sha256(data).hexdigest() == listed["sha256"] == audio.headers["X-Content-SHA256"]
    assert data.startswith(b"OggS") and len(data) == listed["size_bytes"]
    part = await dialer.client.get(listed["audio_url"], headers={**dialer.auth(supervisor), "Range": "bytes=100-4095"})
    assert part.status == 206 and await part.read() == data[100:4096]
    assert part.headers["Content-Range"] == f"bytes 100-4095/{len(data)}"
    converted = await dialer.client.get(listed["audio_url"] + "?format=wav", headers=dialer.auth(supervisor))
    assert converted.status == 200 and converted.content_type == "audio/wav"
    with wave.open(io.BytesIO(await converted.read())) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    assert seconds == pytest.approx(listed["duration_seconds"], abs=0.05) and seconds > 3
    assert max(abs(int.from_bytes(frames[i:i + 2], "little", signed=True)) for i in range(0, len(frames), 2)) > 1000

    await dialer.services.outbox.flush(10)
    access, ranged, _ = await dialer.services.store.list_recording_accesses(listed["recording_id"])
    assert (access["role"], access["channel"], access["bytes"], access["call_id"]) == (
        "supervisor", "http", len(data), call_id)
    assert ranged["bytes"] == 3996
    assert access["token_id"] is not None


@pytest.mark.timeout(120)
async def test_recordings_refuse_other_agents_bad_queries_and_damaged_files_with_reasons(dialer: Dialer) -> None:
    call_id, _ = await _recorded_call(dialer)
    recording = (await dialer.services.store.list_recordings(call_id=call_id))[0]
    agent_token = await dialer.token(TokenRole.AGENT, f"local-r-{dialer.suffix}")  # the call's own agent
    other_id = f"other-r-{dialer.suffix}"
    await dialer.seed("agent_upsert", {"agent_id": other_id, "name": "Other"})
    other_token = await dialer.token(TokenRole.AGENT, other_id)

    async def get(path: str, token: str | None = None) -> tuple[int, dict[str, object]]:
        response = await dialer.client.get(path, headers=dialer.auth(token))
        return response.status, await response.json()

    audio_url = f"/v1/recordings/{recording.recording_id}/audio"
    # Another agent's call's recording is not even said to exist; the agent's own is (its row here:
    # its audio would be a hand-out); searching is for staff only.
    status, body = await get(audio_url, other_token)
    assert (status, body["error"]) == (404, "recording_not_found")
    assert (await get(f"/v1/recordings/{recording.recording_id}", other_token))[0] == 404
    assert (await get(f"/v1/recordings/{recording.recording_id}", agent_token))[0] == 200
    assert (await get(f"/v1/recordings?call_id={call_id}", agent_token))[0] == 403
    assert (await dialer.client.get(audio_url)).status == 401
    status, body = await get("/v1/recordings")
    assert (status, body["field"]) == (422, "call_id")
    status, body = await get(f"/v1/recordings?call_id={call_id}&limit=0")
    assert (status, body["field"]) == (422, "limit")
    status, body = await get(f"/v1/recordings?call_id={call_id}&colour=red")
    assert (status, body["field"]) == (422, "colour")
    assert (await get("/v1/recordings/nope"))[1]["error"] == "recording_not_found"
    assert (await get("/v1/recordings/nope/audio"))[0] == 404

    archived = archived_path(recording.storage_uri)
    _flip_last_bit(archived)  # damaged at rest
    status, body = await get(audio_url)
    assert (status, body["error"]) == (409, "recording_integrity_failed")
    archived.unlink()
    status, body = await get(audio_url)
    assert (status, body["error"]) == (503, "recording_unavailable")
    await dialer.services.outbox.flush(10)
    assert await dialer.services.store.list_recording_accesses(recording.recording_id) == []  # nothing handed out


@pytest.mark.timeout(60)
async def test_a_recording_row_pointing_outside_the_archive_is_not_followed(dialer: Dialer) -> None:
    from datetime import UTC, datetime

    await dialer.seed("recording", {"recording_id": f"rec-{dialer.suffix}", "storage_uri": "file:///etc/hostname",
                                    "format": "wav", "sha256": "0" * 64, "recorded_at": datetime.now(UTC)})
    response = await dialer.client.get(f"/v1/recordings/rec-{dialer.suffix}/audio", headers=dialer.auth())
    assert response.status == 503 and (await response.json())["error"] == "recording_unavailable"
