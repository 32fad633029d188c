"""A supervisor listens to, whispers into and barges into a click-to-call call: a baresip agent
(440 Hz) talking with the simulated network's person, a baresip supervisor (1250 Hz). What each
phone heard, and the call's recording, are analysed over the time each mode was on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.audio import recorded_audio
from tests.controller.conftest import Dialer
from tests.monitor.conftest import (
    AGENT_HZ,
    SUPERVISOR_HZ,
    Monitors,
    call_ended_on,
    nothing_left,
    rms_without,
    tone_share,
    wav_seconds,
)
from tests.waiting import until

pytestmark = pytest.mark.integration

PHASE_SECONDS = 5.0  # audio gathered in each mode
MARGIN = 1.0  # seconds left out at each end of a phase's window (clock alignment, jitter)
TALKS_UNTIL_HUNG_UP = "+12125551000"  # behaviour 0: a person who talks until the caller hangs up


async def _bridged_call(dialer: Dialer, agent_endpoint: str, phone: str = TALKS_UNTIL_HUNG_UP) -> str:
    agent_id = await dialer.agent(agent_endpoint)
    lead_id = await dialer.lead(phone)
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call_id: str = (await response.json())["call_id"]
    await until(lambda: dialer.services.controller.call_status(call_id) == "bridged", 40)
    return call_id


@pytest.mark.timeout(180)
async def test_listen_whisper_and_barge_on_one_supervisor_leg(dialer: Dialer, phone: Any, tmp_path: Path) -> None:
    agent_phone = phone("agent1011", AGENT_HZ)
    supervisor_phone = phone("supervisor01", SUPERVISOR_HZ)
    supervisor = await dialer.token(TokenRole.SUPERVISOR)
    monitors = Monitors(dialer.client, supervisor)
    call_id = await _bridged_call(dialer, "agent1011")
    loop = asyncio.get_running_loop()

    # The wallboard shows the call, nobody on it yet.
    [live] = [c for c in await monitors.live() if c["call_id"] == call_id]
    assert live["agent_id"] == f"agent1011-{dialer.suffix}" and live["lead_number"] == TALKS_UNTIL_HUNG_UP
    assert live["state"] == "bridged" and live["connected"] and live["monitors"] == [] and live["started_at"]

    status, body = await monitors.start(call_id, "supervisor01", "listen")
    assert status == 202, body
    assert body["call_id"] == call_id and body["mode"] == "listen"
    monitor_id = body["monitor_id"]
    listen_at = await monitors.wait_active(monitor_id, "listen")
    await asyncio.sleep(PHASE_SECONDS)  # audio flows; what was heard is checked below

    assert (await monitors.mode(monitor_id, "whisper"))[0] == 202
    whisper_at = await monitors.wait_active(monitor_id, "whisper")
    await asyncio.sleep(PHASE_SECONDS)

    assert (await monitors.mode(monitor_id, "barge"))[0] == 202
    barge_at = await monitors.wait_active(monitor_id, "barge")
    bridge = await dialer.services.ari.get_bridge(f"{call_id}-bridge")
    assert f"{monitor_id}-sup" in bridge.channels and len(bridge.channels) == 3  # agent, lead, supervisor
    [live] = [c for c in await monitors.live() if c["call_id"] == call_id]
    assert [(m["monitor_id"], m["mode"], m["endpoint"]) for m in live["monitors"]] == [
        (monitor_id, "barge", "supervisor01")]
    await asyncio.sleep(PHASE_SECONDS)

    # The call ends: the monitor ends with it and nothing of ours is left in Asterisk.
    response = await dialer.client.post(f"/v1/calls/{call_id}/hangup", headers=dialer.auth())
    assert response.status == 202
    end_at = loop.time()
    ended = await monitors.wait_ended(monitor_id)
    assert ended["end_reason"] == "call_ended" and ended["answered_at"] and ended["ended_at"]
    assert [m["mode"] for m in ended["modes"]] == ["listen", "whisper", "barge"]
    call = await dialer.ended_call(call_id)
    await nothing_left(dialer.asterisk, "call-", "mon-")
    await call_ended_on(agent_phone)
    await call_ended_on(supervisor_phone)

    # The agent's phone: the supervisor's tone is absent while listening, present in whisper.
    heard = agent_phone.heard_files()[-1]
    length = wav_seconds(heard)

    def at(moment: float) -> float:  # a loop time -> seconds into a recording that ends at the hang-up
        return length - (end_at - moment)

    listen_share = tone_share(heard, SUPERVISOR_HZ, at(listen_at) + MARGIN, at(whisper_at) - MARGIN)
    whisper_share = tone_share(heard, SUPERVISOR_HZ, at(whisper_at) + MARGIN, at(barge_at) - MARGIN)
    barge_share = tone_share(heard, SUPERVISOR_HZ, at(barge_at) + MARGIN, at(end_at) - MARGIN)
    assert listen_share < 0.01, f"the agent heard the listening supervisor ({listen_share:.3f})"
    assert whisper_share > 0.1, f"the agent did not hear the whisper ({whisper_share:.3f})"
    assert barge_share > 0.1, f"the agent did not hear the barging supervisor ({barge_share:.3f})"

    # The supervisor's phone: the agent's tone and the lead's speech.
    supervisor_heard = supervisor_phone.heard_files()[-1]
    assert tone_share(supervisor_heard, AGENT_HZ) > 0.05
    # Speech left once the tone is filtered out (G.711 noise on the tone alone is about 70).
    assert rms_without(supervisor_heard, AGENT_HZ) > 500, "the supervisor did not hear the lead"

    # The call's recording (what the lead heard, mixed): no supervisor in listen and whisper,
    # the supervisor once barging.
    rows = await dialer.fetch("SELECT * FROM recordings WHERE call_id = $1", call_id)
    keyring = dialer.services.keyring
    assert len(rows) == 1 and keyring is not None
    recording = tmp_path / "recording.wav"
    recording.write_bytes(recorded_audio(rows[0]["storage_uri"], rows[0]["recording_id"],
                                         dialer.services.settings.recording_keys_dir))
    length = wav_seconds(recording)
    assert tone_share(recording, SUPERVISOR_HZ, at(listen_at) + MARGIN, at(barge_at) - MARGIN) < 0.01
    assert tone_share(recording, SUPERVISOR_HZ, at(barge_at) + MARGIN, at(end_at) - MARGIN) > 0.02

    # Audit: the session as the CRM keeps it.
    await dialer.services.outbox.flush(10)
    [row] = await dialer.fetch("SELECT * FROM monitor_sessions WHERE monitor_id = $1", monitor_id)
    assert row["call_id"] == call_id and row["state"] == "ended" and row["end_reason"] == "call_ended"
    assert row["supervisor_endpoint"] == "supervisor01" and row["call_kind"] == "click_to_call"
    assert row["agent_id"] == call.agent_id and row["requested_by"] is not None
    assert row["requested_at"] <= row["answered_at"] <= row["ended_at"]
    assert "listen" in row["modes"] and "barge" in row["modes"]
