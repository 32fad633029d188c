"""A campaign run on the real stack: one baresip agent and simulated Local-channel agents,
a few dozen leads on the simulated network (people, machines, busy, no answer, unallocated),
some on do-not-call lists and some outside their calling window."""

from __future__ import annotations

import time
from typing import Any

import pytest

from compliance_rules.optout import opt_out
from compliance_rules.telemarketing import is_live_answer
from dialer.campaign.agent import AgentState
from dialer.pacing import PacingEvent, PacingSnapshot
from dialer.runtime.gate import contact_request
from tests.audio import SOUNDS, notice_match, recorded_audio
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.integration


def _numbers(area: str, behaviour: str, count: int, start: int) -> list[str]:
    """Distinct simulated numbers: +1 AREA EXCHANGE then the behaviour's last four digits."""
    return [f"+1{area}{start + i}{behaviour}" for i in range(count)]


async def _linked_recording(floor: Floor, call_id: str) -> str | None:
    """The recording the call's row names now (linked when the recording's row arrives)."""
    (row,) = await floor.fetch("SELECT recording_id FROM calls WHERE call_id = $1", call_id)
    return str(row["recording_id"]) if row["recording_id"] is not None else None


async def _campaign_calls(floor: Floor, campaign_id: str) -> list[Any]:
    await floor.services.outbox.flush(20)
    return await floor.fetch("SELECT * FROM calls WHERE campaign_id = $1 ORDER BY requested_at", campaign_id)


@pytest.mark.timeout(150)
async def test_a_campaign_run_dials_only_allowed_leads_connects_people_and_logs_evidence(
    floor: Floor, agent_phone: Any
) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign(dial_mode="predictive", machine_action="hangup")
    people = _numbers("212", "1104", 10, 201)  # New York: 1 s ring, hang up 4 s after answering
    machines = _numbers("212", "2103", 4, 301)
    busy = _numbers("212", "3100", 3, 401)
    no_answer = _numbers("212", "4000", 2, 501)
    unallocated = _numbers("212", "5000", 2, 601)
    on_dnc = _numbers("212", "1104", 3, 701)
    outside_window = _numbers("415", "1104", 3, 201)  # San Francisco, 6:30 a.m. by the gate's clock
    dialable = people + machines + busy + no_answer + unallocated
    leads = await floor.leads(campaign_id, dialable + on_dnc, state="NY", zip="10001")
    leads |= await floor.leads(campaign_id, outside_window, state="CA", zip="94103")
    for phone in on_dnc:
        await opt_out(floor.services.dnc, phone, "api")

    agent_phone("agent1012")
    agents = [await floor.agent("agent1012")] + [await floor.agent(f"Local/sim{i}@agent-sim") for i in (2, 3)]
    for agent_id in agents:
        await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: all(
        (s := runtime.agent_state(a)) is not None and s.state is AgentState.READY for a in agents), 20, "agents ready")

    started = time.time()
    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]

    await floor.wait_for(lambda: runner.counters["dials"] >= len(dialable) and not runner.calls,
                         110, "every dialable lead attempted once")
    await runtime.stop_campaign(campaign_id)
    elapsed = time.time() - started
    calls = await _campaign_calls(floor, campaign_id)
    dialed = [call["lead_number"] for call in calls]

    # Each dialable lead once, nobody else: no DNC lead, nobody outside their window.
    assert sorted(dialed) == sorted(dialable), (sorted(set(dialable) - set(dialed)), elapsed)
    assert set(dialed).isdisjoint(on_dnc + outside_window)
    assert runner.blocked.get("opted_out", 0) >= len(on_dnc)
    assert runner.blocked.get("outside_calling_window", 0) >= len(outside_window)

    # Every dial has an allowed gate decision, recorded before its originate.
    for call in calls:
        rows = await floor.fetch("SELECT allowed, decided_at, phone FROM compliance_decisions WHERE decision_id = $1",
                                 call["compliance_decision_id"])
        assert len(rows) == 1 and rows[0]["allowed"] and rows[0]["phone"] == call["lead_number"]
        assert call["ended_at"] is not None and call["outcome"] is not None

    by_number = {call["lead_number"]: call for call in calls}
    for phone in people:
        call = by_number[phone]
        assert call["amd_result"] in ("HUMAN", "NOTSURE"), call
        assert call["greeting_ended_at"] is not None and call["lead_answered_at"] is not None
        # Reached an agent (within 2 s of the greeting), or got the message and counts as abandoned.
        if call["bridged_at"] is not None:
            assert call["agent_id"] in agents and call["outcome"] == "answered"
            assert (call["bridged_at"] - call["greeting_ended_at"]).total_seconds() <= 2.0
            assert not call["abandoned"]
        else:
            assert call["safe_harbor_played"] and call["abandoned"], call
    for phone in machines:
        call = by_number[phone]
        assert (call["amd_result"], call["outcome"], call["bridged_at"]) == ("MACHINE", "machine", None), call
    for phone, outcome, cause in [*((p, "busy", 17) for p in busy), *((p, "no_answer", 19) for p in no_answer),
                                  *((p, "unallocated", 1) for p in unallocated)]:
        call = by_number[phone]
        assert (call["outcome"], call["hangup_cause"], call["lead_answered_at"]) == (outcome, cause, None), call

    # Every connected call has a recording and a calls row; the recording is real audio.
    connected = [call for call in calls if call["bridged_at"] is not None]
    assert len(connected) >= 6
    for call in connected:
        rows = await floor.recordings(call["call_id"])
        assert len(rows) == 1 and await _linked_recording(floor, call["call_id"]) == rows[0]["recording_id"]
        # Opus at 16 kbit/s: about 2 KB per second of call.
        assert rows[0]["format"] == "opus" and rows[0]["size_bytes"] > 1000 and rows[0]["duration_seconds"] > 1.0
    # /metrics has one answer-to-bridge observation per connected outbound call.
    exposition = await (await floor.client.get("/metrics")).text()
    outbound_connected = sum(1 for call in connected if call["direction"] != "inbound")
    assert f'dialer_answer_to_bridge_seconds_count{{kind="campaign"}} {outbound_connected:.1f}' in exposition

    # The abandon rate the runtime reports equals a recount from the calls rows.
    await runner.refresh_tally()
    live = [call for call in calls if is_live_answer(call["amd_result"], inbound=call["direction"] == "inbound")]
    recount = sum(1 for call in live if call["abandoned"]) / len(live)
    status = runtime.campaign_status(campaign_id)
    assert status is not None and status.live_answers == len(live)
    assert status.abandon_rate == pytest.approx(recount)

    for agent_id in agents:
        await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agents logged out")
    await floor.nothing_left("ags-", "cmp-")


class _AllAtOnce:
    """A test pacer: every queued lead at once, whatever the agents (to force the safe harbor)."""

    name = "all_at_once"

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del now
        return snapshot.free_lines


@pytest.mark.timeout(90)
async def test_no_agent_within_two_seconds_plays_the_safe_harbor_and_press_9_opts_out(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign(dial_mode="progressive")
    presses_9 = "+12129991006"  # a person who presses 9 six seconds after answering
    listener = "+12122011108"  # a person who listens 8 s and hangs up
    leads = await floor.leads(campaign_id, [presses_9, listener], state="NY", zip="10001")
    agent_id = await floor.agent("Local/sim9@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.pause(agent_id, "training")  # logged in, but nobody is ready for the answered calls
    await runtime.start_campaign(campaign_id, pacer=_AllAtOnce())
    runner = runtime.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= 2 and not runner.calls, 60, "both calls over")
    await runtime.stop_campaign(campaign_id)
    calls = {call["lead_number"]: call for call in await _campaign_calls(floor, campaign_id)}
    for phone in (presses_9, listener):
        call = calls[phone]
        assert call["amd_result"] == "HUMAN" and call["bridged_at"] is None and call["agent_id"] is None
        assert call["safe_harbor_played"] and call["abandoned"] and call["outcome"] == "abandoned"
        # The message started within 2 s of the greeting's end (the AMD decision), and is recorded.
        rows = await floor.recordings(call["call_id"])
        assert len(rows) == 1 and rows[0]["duration_seconds"] > 2.0

    # Press 9: opted out at once; the next gate decision for the number is blocked.
    opt_outs = await floor.fetch("SELECT * FROM opt_outs WHERE phone = $1", presses_9)
    assert [row["source"] for row in opt_outs] == ["safe_harbor_key"]
    assert opt_outs[0]["lead_id"] == leads[presses_9] and opt_outs[0]["call_id"] == calls[presses_9]["call_id"]
    assert await floor.fetch("SELECT * FROM opt_outs WHERE phone = $1", listener) == []
    decision = await floor.services.gate.decide(contact_request(presses_9, None), runner.policy)
    assert not decision.allowed and "opted_out" in {code.value for code in decision.codes}
    membership = await floor.fetch("SELECT done FROM campaign_leads WHERE lead_id = $1", leads[presses_9])
    assert membership[0]["done"]
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agent logged out")
    await floor.nothing_left("ags-", "cmp-")


@pytest.mark.timeout(120)
async def test_a_machine_gets_the_campaigns_message_after_the_beep_and_the_drop_is_recorded(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign(dial_mode="progressive", machine_action="message")
    machine = "+12125552120"  # an answering machine: rings 1 s, a greeting, a beep, then records 20 s
    await floor.leads(campaign_id, [machine], state="NY", zip="10001")
    agent_id = await floor.agent("Local/sim10@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= 1 and not runner.calls, 90, "the call over")
    await runtime.stop_campaign(campaign_id)
    (call,) = await _campaign_calls(floor, campaign_id)
    assert (call["amd_result"], call["outcome"], call["agent_id"]) == ("MACHINE", "machine", None)
    assert not call["abandoned"]  # a machine is not a person: not in the abandon rate
    # The drop is recorded like every call: the beep, then the whole message.
    (row,) = await floor.recordings(call["call_id"])
    assert row["duration_seconds"] > 10 and await _linked_recording(floor, call["call_id"]) == row["recording_id"]
    audio = recorded_audio(row["storage_uri"], row["recording_id"], floor.services.settings.recording_keys_dir)
    # The message's first 4 s, alone on the line after the beep: measured 1.0.
    assert notice_match(audio, SOUNDS / "safe-harbor.wav", seconds=4) > 0.5
    await runtime.logout(agent_id)
    await floor.wait_for(lambda: not runtime.agents, 15, "agent logged out")
    await floor.nothing_left("ags-", "cmp-")
