"""The recording is announced to a lead who may be in an all-party-consent state: the notice is
played into the recorded bridge once the lead joins, so both parties hear it and the recording
itself keeps the proof. A lead in a one-party state hears no notice."""

from __future__ import annotations

import pytest

from tests.audio import notice_match, recorded_sides
from tests.controller.conftest import Dialer

pytestmark = pytest.mark.integration


async def _call_and_recording(dialer: Dialer, phone: str, **lead: str) -> tuple[str, list[bytes]]:
    agent_id = f"local-n{phone[-6:]}-{dialer.suffix}"
    await dialer.seed("agent_upsert", {"agent_id": agent_id, "name": "Local", "sip_endpoint": "Local/2004@agent-sim"})
    lead_id = await dialer.lead(phone, **lead)
    response = await dialer.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": agent_id},
                                        headers=dialer.auth())
    assert response.status == 202, await response.text()
    call = await dialer.ended_call((await response.json())["call_id"])
    assert call.outcome is not None and call.outcome.value == "answered" and call.recording_id is not None
    recording = await dialer.services.store.get_recording(call.recording_id)
    assert recording is not None
    (decision,) = await dialer.fetch(
        "SELECT notices FROM compliance_decisions WHERE decision_id = $1", call.compliance_decision_id)
    return str(decision["notices"]), recorded_sides(
        recording.storage_uri, recording.recording_id, dialer.services.settings.recording_keys_dir)


@pytest.mark.timeout(120)
async def test_a_california_lead_hears_the_recording_notice_and_a_new_york_lead_does_not(dialer: Dialer) -> None:
    # The simulated network: a person who answers after 1 s and talks for 7 s.
    notices, california = await _call_and_recording(dialer, "+14155571107", state="CA")
    assert "recording_disclosure" in notices and "Cal. Penal Code 632" in notices
    none, new_york = await _call_and_recording(dialer, "+12125571107", state="NY")
    assert none == "[]"
    # The best of the mix and each channel (the agent's channel holds what the lead hears).
    announced, silent = max(map(notice_match, california)), max(map(notice_match, new_york))
    # Measured: mix 0.15-0.6 with the notice (lower under load), a channel up to 0.23; 0.05-0.07 without.
    assert announced > 0.15 and silent < 0.12, (announced, silent)
