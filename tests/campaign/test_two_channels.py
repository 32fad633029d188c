"""A campaign call recorded in two channels on the real stack: the agent's side (what the lead
hears: the agent, and every prompt) on the left, the lead's voice on the right, archived as one
two-channel Opus recording under the call's recording id, and mixed to mono on request."""

from __future__ import annotations

import pytest

from dialer.campaign.agent import AgentState
from dialer.runtime.recording import leg_names
from recordings.reader import FileRef, RecordingReader, representation
from recordings.storage import file_uri_path
from recordings.transcode import AudioFormat
from tests.campaign.conftest import Floor
from tests.recordings.conftest import samples_of
from tests.recordings.test_real_call import AGENT_TONE_HZ, tone_share

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_a_campaign_call_is_archived_agent_left_lead_right(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign()
    phone = "+12125691108"  # a person in New York: 1 s ringing, then talks 8 s
    await floor.leads(campaign_id, [phone], state="NY", zip="10001")
    agent_id = await floor.agent("Local/stereo1@agent-sim")  # "talks" a steady 440 Hz tone
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= 1 and not runner.calls, 60, "the call over")
    await runtime.stop_campaign(campaign_id)
    await floor.services.outbox.flush(20)
    (call,) = await floor.fetch("SELECT call_id, outcome, recording_id FROM calls WHERE campaign_id = $1",
                                campaign_id)
    assert call["outcome"] == "answered"
    (row,) = await floor.recordings(call["call_id"])
    assert (row["format"], row["channels"], row["channel_layout"]) == ("opus", 2, "agent,lead")
    assert row["recording_id"] == call["recording_id"] == f"{call['call_id']}-recording"

    path = file_uri_path(row["storage_uri"])
    reader = RecordingReader(path.parent, floor.services.keyring)
    with reader.open(FileRef(row["recording_id"], row["storage_uri"], row["sha256"].strip())) as opened:
        opened.check()
        both, _ = samples_of(b"".join(representation(opened, AudioFormat.WAV).chunks()))
    assert both.shape[1] == 2 and both.shape[0] > 8000 * 5
    # The agent's tone is on the left, the lead's speech on the right (not the tone).
    assert tone_share(both[:, 0], AGENT_TONE_HZ) > 0.5, tone_share(both[:, 0], AGENT_TONE_HZ)
    assert tone_share(both[:, 1], AGENT_TONE_HZ) < 0.2
    assert float((both[:, 1] ** 2).mean() ** 0.5) > 200

    # Mixed to mono on request, through the API.
    response = await floor.client.get(f"/v1/recordings/{row['recording_id']}/audio?format=wav&mix=mono",
                                      headers=floor.auth())
    assert response.status == 200, await response.text()
    mono, _ = samples_of(await response.read())
    assert mono.shape[1] == 1 and abs(mono.shape[0] - both.shape[0]) < 800
    # Nothing of the call is left in Asterisk's spool: the legs and the mixed recording went.
    stored = {recording.name for recording in await floor.services.ari.list_stored_recordings()}
    assert not stored & {row["recording_id"], *leg_names(row["recording_id"])}
    await floor.nothing_left("cmp-")
