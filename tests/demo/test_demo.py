"""The demo campaign: its lead mix and gate clock (pure), and its core run for ~30 s against the
test session's real Asterisk, PostgreSQL and Redis with the gate's clock inside every window."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from compliance_rules.numbers import parse_number
from compliance_rules.ruleset import load_rulebook
from dialer.demo.campaign import DEMO_TUNING, DemoAgent, DemoRun, Progress, run_demo
from dialer.demo.leads import (
    DEMO_STATES,
    Behaviour,
    TextReply,
    demo_leads,
    dialable_at,
    gate_start,
    with_texters,
)
from dialer.demo.report import progress_line, summary_text
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.controller.conftest import dialer_settings

# A Tuesday, 14:00 in New York and 9:00 in Honolulu: every demo state is inside its window.
INSIDE_EVERY_WINDOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_the_lead_mix_is_distinct_valid_spread_over_states_and_has_every_behaviour() -> None:
    leads = demo_leads(360)
    assert len({lead.phone for lead in leads}) == 360
    assert all(parse_number(lead.phone).ok for lead in leads)
    assert Counter(lead.home.state for lead in leads) == {state.state: 30 for state in DEMO_STATES}
    assert set(Counter(lead.behaviour for lead in leads)) == set(Behaviour)
    assert 10 <= sum(1 for lead in leads if lead.dnc is not None) <= 50
    assert all(lead.phone[5:8] == "999" for lead in leads if lead.behaviour is Behaviour.PRESSES_9)
    assert demo_leads(360) == leads  # the seed makes it repeatable


def test_the_texters_are_open_people_moved_to_the_exchanges_that_answer_texts() -> None:
    book = load_rulebook()
    leads = with_texters(demo_leads(360), INSIDE_EVERY_WINDOW, book)
    texters = [lead for lead in leads if lead.texts is not None]
    assert [(lead.texts, lead.phone[5:8]) for lead in texters] == [
        (TextReply.STOP, "770"), (TextReply.YES, "774"), (TextReply.EMOJI, "775"), (TextReply.HELP, "773")]
    assert all(lead.behaviour is Behaviour.PERSON and lead.dnc is None for lead in texters)
    assert all("consents" in lead.lead_fields() for lead in texters)
    assert len({lead.phone for lead in leads}) == 360
    # No other demo number lands in a texting persona's exchange.
    assert not [lead for lead in leads if lead.texts is None and lead.phone[5:7] == "77"]


def test_the_gate_clock_moves_only_when_no_zone_is_open() -> None:
    book = load_rulebook()
    leads = demo_leads(360)
    assert len(dialable_at(leads, INSIDE_EVERY_WINDOW, book)) == sum(1 for lead in leads if lead.dnc is None)
    assert gate_start(leads, INSIDE_EVERY_WINDOW, book, 60) == INSIDE_EVERY_WINDOW
    # 10:00 UTC: 5 a.m. in New York, midnight in Honolulu; New York opens at 8:00 (13:00 UTC).
    early = datetime(2026, 11, 24, 10, 7, tzinfo=UTC)
    assert dialable_at(leads, early, book) == []
    assert gate_start(leads, early, book, 60) == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


@pytest.mark.integration
@pytest.mark.timeout(150)
async def test_the_demo_core_runs_a_campaign_and_its_summary_holds_the_invariants(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    book = load_rulebook()
    leads = demo_leads(120, seed=7)
    agents = [DemoAgent(f"demo-test-{i}", f"Local/demotest{i}@agent-sim", f"Agent {i}") for i in range(1, 4)]
    run = DemoRun(leads=leads, agents=agents, seconds=30, book=book, gate_now=lambda: INSIDE_EVERY_WINDOW,
                  gate_clock="fixed")
    samples: list[Progress] = []
    async with dialer_services(settings, gate_clock=lambda: INSIDE_EVERY_WINDOW, drain_seconds=5,
                               campaign_overrides=DEMO_TUNING) as services:
        summary = await run_demo(services, run, samples.append)
        assert services.campaigns is not None and not services.campaigns.agents  # all logged out

    assert summary.dials >= 4 and len(samples) >= 25
    assert summary.outcomes.get("answered", 0) >= 2
    # The abandon rate the runtime reports equals the recount from the calls rows.
    assert summary.abandon_rate == pytest.approx(summary.abandon_recount)
    assert summary.abandoned <= summary.safe_harbor
    # No lead on a DNC list dialed, and the gate said why they were not.
    assert summary.dnc_leads_dialed == 0
    assert summary.leads_blocked_by_reason.keys() <= {"dnc_internal", "dnc_federal", "opted_out"}
    # Four leads were texted first; the one who answered STOP was opted out and never dialed.
    assert summary.texts_sent == 4 and summary.texts_delivered == 4
    assert summary.text_replies == {"opt_out": 1, "help": 1, "reply": 2}
    assert summary.opted_out_by_text == 1 and summary.dialed_after_text_opt_out == 0
    assert sum(summary.gate_blocks.values()) >= 1
    # Every dial had an allowed decision; every connected call is recorded.
    assert summary.calls_without_allowed_decision == 0
    assert summary.connected >= 2 and summary.connected_recorded == summary.connected
    # Every person reached an agent or heard the safe-harbor message; the run let its calls end.
    assert summary.people_unattended == 0 and summary.outcomes.get("canceled", 0) == 0
    text = summary_text(summary, settings.pg_dsn)
    assert summary.campaign_id in text and "abandon rate" in text
    assert "opted out by text" in text
    assert "dials" in progress_line(samples[-1])
    assert json.loads(json.dumps(summary.to_json()))["dials"] == summary.dials  # `dialer demo --json`
    assert (summary.recording_example or "").startswith(str(settings.recordings_dir))
