"""Click-to-call end to end: the CRM asks, the agent's real softphone (baresip) rings, the lead
(the simulated public network) is dialed, the call is recorded and logged to the CRM tables."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crm_bridge.store import TokenRole
from recordings.archive import read_recording
from tests.audio import analyse_wav, recorded_audio
from tests.controller.conftest import Dialer
from tests.softphone import SOURCE_TONE_HZ

pytestmark = pytest.mark.integration


async def _post_call(dialer: Dialer, body: dict[str, Any], token: str | None = None, **headers: str) -> Any:
    response = await dialer.client.post("/v1/calls", json=body, headers={**dialer.auth(token), **headers})
    return response.status, await response.json()


def _tone_energy(path: Path, hz: float) -> float:
    """Share of the spectrum's energy within 10 Hz of `hz`."""
    import wave

    import numpy as np

    with wave.open(str(path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
        rate = wav.getframerate()
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1.0 / rate)
    return float(spectrum[np.abs(freqs - hz) < 10].sum() / spectrum.sum())


@pytest.mark.timeout(120)
async def test_click_to_call_connects_records_and_logs_everything(
    dialer: Dialer, softphone_factory: Any, tmp_path: Path
) -> None:
    phone = softphone_factory("agent1003")
    agent_id = await dialer.agent("agent1003")
    # The simulated network: a person in New York, 1 s of ringing, hangs up 6 s after answering.
    lead_id = await dialer.lead("+12125551106", state="NY", zip="10001")
    campaign_id = await dialer.campaign(caller_id="+18885550123")
    agent_token = await dialer.token(TokenRole.AGENT, agent_id)

    events: list[dict[str, Any]] = []
    async with dialer.client.ws_connect(f"/v1/agents/{agent_id}/events", headers=dialer.auth(agent_token)) as ws:
        assert (await ws.receive_json())["type"] == "subscribed"
        status, body = await _post_call(dialer, {"lead_id": lead_id, "agent_id": agent_id, "campaign_id": campaign_id})
        assert status == 202, body
        call_id = body["call_id"]
        async with asyncio.timeout(60):
            while not events or events[-1].get("state") != "ended":
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                events.append(json.loads(message.data))

    call = await dialer.ended_call(call_id)
    assert call.outcome is not None and call.outcome.value == "answered"
    for stamp in ("requested_at", "agent_answered_at", "lead_ringing_at", "lead_answered_at", "bridged_at", "ended_at"):
        assert getattr(call, stamp) is not None, stamp
    assert call.requested_at <= call.agent_answered_at <= call.lead_ringing_at  # type: ignore[operator]
    assert call.lead_answered_at <= call.bridged_at <= call.ended_at  # type: ignore[operator]
    assert call.talk_seconds is not None and 4.5 <= call.talk_seconds <= 8.5
    assert call.ring_seconds is not None and call.total_seconds is not None
    assert call.caller_id == "+18885550123" and call.lead_number == "+12125551106"
    assert call.compliance_decision_id is not None

    # The screen pop reached the agent's console before the lead answered.
    kinds = [(e["type"], e.get("state")) for e in events]
    assert kinds.index(("screen_pop", None)) < kinds.index(("call_state", "lead_answered"))
    pop = next(e for e in events if e["type"] == "screen_pop")
    assert pop["lead"]["lead_id"] == lead_id and pop["call_id"] == call_id

    # The agent heard the lead; the recording has both sides and the call's length.
    heard = phone.last_heard()
    assert not heard.silent and heard.voiced_fraction > 0.2
    rows = await dialer.fetch("SELECT * FROM recordings WHERE call_id = $1", call_id)
    assert len(rows) == 1 and call.recording_id == rows[0]["recording_id"]
    sealed = Path(rows[0]["storage_uri"].removeprefix("file://"))
    # Sealed at rest (AES-256-GCM segments under a data key wrapped by the keyring's key), as
    # Opus; opened with the dialer's keyring it is the call's audio.
    keyring = dialer.services.keyring
    assert keyring is not None and rows[0]["encryption_key_id"] == keyring.current.key_id
    audio = read_recording(sealed, keyring)
    assert hashlib.sha256(audio).hexdigest() == rows[0]["sha256"] and audio.startswith(b"OggS")
    path = tmp_path / "recording.wav"
    path.write_bytes(recorded_audio(rows[0]["storage_uri"], rows[0]["recording_id"],
                                    dialer.services.settings.recording_keys_dir))
    recording = analyse_wav(path)
    assert not recording.silent
    assert _tone_energy(path, SOURCE_TONE_HZ) > 0.05  # the agent's 440 Hz tone went into the call
    assert call.agent_answered_at is not None and call.ended_at is not None
    expected = (call.ended_at - call.agent_answered_at).total_seconds()
    assert abs(recording.seconds - expected) <= 1.0
    assert rows[0]["size_bytes"] == len(audio)

    # The agent's disposition moves the lead along the pipeline.
    response = await dialer.client.post(
        f"/v1/calls/{call_id}/disposition", json={"code": "appointment_set"}, headers=dialer.auth(agent_token)
    )
    assert response.status == 202
    await dialer.services.outbox.flush(10)
    lead = await dialer.services.store.get_lead(lead_id)
    assert lead is not None and lead.pipeline_stage.value == "appt_set"
    # The agent has no campaign session: its states came from the call (occupancy reads them).
    states = await dialer.fetch("SELECT state, since, ended_at, session_id, call_id FROM agent_state_changes "
                                "WHERE agent_id = $1 ORDER BY version", agent_id)
    assert [row["state"] for row in states] == ["reserved", "on_call", "wrap_up", "ready"]
    assert all(row["session_id"].startswith("click-to-call:") for row in states)
    assert states[1]["call_id"] == call_id and states[3]["ended_at"] is None
    assert call.bridged_at is not None and abs((states[1]["since"] - call.bridged_at).total_seconds()) < 2
    await dialer.nothing_left()


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("number", "outcome", "cause", "sip_code"),
    [
        ("+14155553100", "busy", 17, 486),
        ("+16175555100", "unallocated", 1, 404),
        ("+17135554100", "no_answer", 19, None),
        ("+13125556100", "congestion", 34, 503),
    ],
)
async def test_unanswered_leads_end_with_their_outcome_and_leave_nothing(
    dialer: Dialer, softphone_factory: Any, number: str, outcome: str, cause: int, sip_code: int | None
) -> None:
    softphone_factory("agent1005")
    agent_id = await dialer.agent("agent1005")
    lead_id = await dialer.lead(number)
    status, body = await _post_call(dialer, {"lead_id": lead_id, "agent_id": agent_id})
    assert status == 202, body
    call = await dialer.ended_call(body["call_id"], within=60)
    assert call.outcome is not None and call.outcome.value == outcome
    assert call.hangup_cause == cause
    if sip_code is not None:
        assert call.sip_code == sip_code
    assert call.lead_answered_at is None and call.bridged_at is None and call.ended_at is not None
    await dialer.nothing_left()


@pytest.mark.timeout(90)
async def test_agent_who_does_not_answer_means_the_lead_is_never_dialed(
    dialer: Dialer, softphone_factory: Any
) -> None:
    softphone_factory("agent1006", auto_answer=False)
    agent_id = await dialer.agent("agent1006")
    lead_id = await dialer.lead("+12125551105")
    status, body = await _post_call(dialer, {"lead_id": lead_id, "agent_id": agent_id})
    assert status == 202
    call = await dialer.ended_call(body["call_id"], within=40)
    assert call.outcome is not None and call.outcome.value == "agent_no_answer"
    assert call.lead_ringing_at is None and call.agent_answered_at is None
    await dialer.nothing_left()


@pytest.mark.timeout(60)
async def test_a_blocked_request_gets_403_creates_nothing_and_is_audited(dialer: Dialer) -> None:
    agent_id = await dialer.agent("agent1007")
    response = await dialer.client.post(
        "/v1/opt-outs", json={"phone": "+12125551107", "source": "api"}, headers=dialer.auth()
    )
    assert response.status == 201
    status, body = await _post_call(dialer, {"phone": "+12125551107", "agent_id": agent_id})
    assert status == 403 and body["error"] == "compliance_blocked"
    assert "opted_out" in {reason["code"] for reason in body["reasons"]}
    assert await dialer.our_asterisk_objects() == []  # at once: nothing was ever created
    await dialer.services.outbox.flush(10)
    rows = await dialer.fetch("SELECT allowed, reasons FROM compliance_decisions WHERE decision_id = $1::uuid",
                              body["decision_id"])
    assert len(rows) == 1 and rows[0]["allowed"] is False
    # No call id is named for a call that never exists (issue 10, item 6), and no row was made.
    assert "call_id" not in body
    assert await dialer.fetch("SELECT call_id FROM calls WHERE lead_number = $1", "+12125551107") == []


@pytest.mark.timeout(90)
async def test_the_same_idempotency_key_places_one_call(dialer: Dialer, softphone_factory: Any) -> None:
    softphone_factory("agent1008")
    agent_id = await dialer.agent("agent1008")
    lead_id = await dialer.lead("+12125551102")
    request = {"lead_id": lead_id, "agent_id": agent_id}
    first = await _post_call(dialer, request, **{"Idempotency-Key": "crm-req-42"})
    second = await _post_call(dialer, request, **{"Idempotency-Key": "crm-req-42"})
    assert first[0] == second[0] == 202
    assert first[1]["call_id"] == second[1]["call_id"]
    await dialer.ended_call(first[1]["call_id"])
    rows = await dialer.fetch("SELECT call_id FROM calls WHERE lead_id = $1", lead_id)
    assert [row["call_id"] for row in rows] == [first[1]["call_id"]]


@pytest.mark.timeout(60)
async def test_bad_call_requests_get_4xx_naming_the_problem(dialer: Dialer) -> None:
    agent_id = await dialer.agent("agent1009")
    other_agent = await dialer.agent("agent1010")
    lead_id = await dialer.lead("+12125551102")
    other_token = await dialer.token(TokenRole.AGENT, other_agent)
    cases: list[tuple[dict[str, Any], str | None, int, str | None]] = [
        ({"lead_id": lead_id}, None, 422, "agent_id"),
        ({"lead_id": lead_id, "agent_id": 7}, None, 422, "agent_id"),
        ({"lead_id": "no-such-lead", "agent_id": agent_id}, None, 422, "lead_id"),
        ({"lead_id": lead_id, "agent_id": "no-such-agent"}, None, 422, "agent_id"),
        ({"phone": "555-1234", "agent_id": agent_id}, None, 422, "phone"),
        ({"phone": "+12125551102", "lead_id": lead_id, "agent_id": agent_id}, None, 422, "lead_id"),
        ({"lead_id": lead_id, "agent_id": agent_id, "campaign_id": "nope"}, None, 422, "campaign_id"),
        ({"lead_id": lead_id, "agent_id": agent_id, "colour": "red"}, None, 422, "colour"),
        ({"lead_id": lead_id, "agent_id": agent_id}, other_token, 403, "agent_id"),
    ]
    for body, token, status, field in cases:
        got_status, got = await _post_call(dialer, body, token)
        assert (got_status, got.get("field")) == (status, field), (body, got)
        assert isinstance(got["error"], str) and got["message"]
    response = await dialer.client.post("/v1/calls", data="{not json", headers=dialer.auth())
    assert response.status == 400
    for path, token, status in [
        ("/v1/calls/call-nope/hangup", None, 404),
        ("/v1/calls/call-nope/hangup", other_token, 404),
    ]:
        response = await dialer.client.post(path, headers=dialer.auth(token))
        assert response.status == status and (await response.json())["error"] == "call_not_found"
    crm_socket = await dialer.client.get(f"/v1/agents/{agent_id}/events", headers=dialer.auth())
    assert crm_socket.status == 403
    stranger = await dialer.client.get(f"/v1/agents/{agent_id}/events", headers=dialer.auth(other_token))
    assert stranger.status == 403
    not_a_socket = await dialer.client.get(
        f"/v1/agents/{other_agent}/events", headers=dialer.auth(other_token)
    )
    assert not_a_socket.status == 400 and (await not_a_socket.json())["error"] == "websocket_required"
    assert (await dialer.client.post("/v1/calls", json={})).status == 401
    assert await dialer.our_asterisk_objects() == []  # at once: nothing was ever created


@pytest.mark.timeout(90)
async def test_hangup_ends_a_live_call_once(dialer: Dialer) -> None:
    from tests.waiting import until

    agent_id = f"local-{dialer.suffix}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": "Local/2001@agent-sim"})
    lead_id = await dialer.lead("+12125551000")  # a person who talks until we hang up
    status, body = await _post_call(dialer, {"lead_id": lead_id, "agent_id": agent_id})
    assert status == 202
    call_id = body["call_id"]
    await until(lambda: dialer.services.controller.call_status(call_id) == "bridged", 30)
    response = await dialer.client.post(f"/v1/calls/{call_id}/hangup", headers=dialer.auth())
    assert response.status == 202
    call = await dialer.ended_call(call_id)
    assert call.outcome is not None and call.outcome.value == "answered" and call.bridged_at is not None
    again = await dialer.client.post(f"/v1/calls/{call_id}/hangup", headers=dialer.auth())
    assert again.status == 409 and (await again.json())["error"] == "call_not_active"
    await dialer.nothing_left()


@pytest.mark.timeout(60)
async def test_metrics_count_calls_gate_decisions_and_the_outbox(dialer: Dialer) -> None:
    agent_id = f"local-m-{dialer.suffix}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": "Local/2002@agent-sim"})
    lead_id = await dialer.lead("+12125551102")
    status, body = await _post_call(dialer, {"lead_id": lead_id, "agent_id": agent_id})
    assert status == 202
    await dialer.ended_call(body["call_id"])
    response = await dialer.client.get("/metrics")  # no token: aggregates only
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}
    assert samples['dialer_calls_finished_total{outcome="completed"}'] >= 1
    assert samples['dialer_gate_decisions_total{allowed="true"}'] >= 2  # the request and the recheck
    assert samples["dialer_ari_connected"] == 1 and samples["dialer_outbox_pending"] >= 0
    assert "+1212" not in text and lead_id not in text
