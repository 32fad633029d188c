"""The demo campaign: its lead mix and gate clock (pure), and its core run for ~30 s against the
test session's real Asterisk, PostgreSQL and Redis with the gate's clock inside every window."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from compliance_rules.numbers import parse_number
from compliance_rules.ruleset import load_rulebook
from dialer.cli import UserError
from dialer.demo import (
    MIN_DIALABLE,
    ProgressDisplay,
    console_text,
    gate_plan,
)
from dialer.demo.campaign import DEMO_TUNING, DemoAgent, DemoRun, Progress, run_demo
from dialer.demo.leads import (
    DEMO_STATES,
    Behaviour,
    DncList,
    TextReply,
    demo_leads,
    dialable_at,
    gate_start,
    with_texters,
)
from dialer.demo.report import progress_line, summary_text
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from dialer.settings import from_environment
from tests.controller.conftest import dialer_settings

# A Tuesday, 14:00 in New York and 9:00 in Honolulu: every demo state is inside its window.
INSIDE_EVERY_WINDOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_the_lead_mix_is_distinct_valid_spread_over_states_and_has_every_behaviour() -> None:
    leads = demo_leads(360)
    assert len({lead.phone for lead in leads}) == 360
    assert all(parse_number(lead.phone).ok for lead in leads)
    assert Counter(lead.home.state for lead in leads) == {state.state: 30 for state in DEMO_STATES}
    assert set(Counter(lead.behaviour for lead in leads)) == set(Behaviour)
    assert sum(1 for lead in leads if lead.dnc is not None) == 25  # 7 %, as the README says
    assert {lead.dnc for lead in leads} == {None, *DncList}
    assert all(lead.phone[5:8] == "999" for lead in leads if lead.behaviour is Behaviour.PRESSES_9)
    assert demo_leads(360) == leads  # the seed makes it repeatable


def test_the_texters_are_open_people_moved_to_the_exchanges_that_answer_texts() -> None:
    book = load_rulebook()
    leads = with_texters(demo_leads(360), INSIDE_EVERY_WINDOW, book)
    texters = [lead for lead in leads if lead.texts is not None]
    assert [(lead.texts, lead.phone[5:8]) for lead in texters] == [
        (TextReply.STOP, "770"), (TextReply.YES, "774"), (TextReply.EMOJI, "775"), (TextReply.HELP, "773")]
    assert all(lead.behaviour is Behaviour.PERSON and lead.dnc is None for lead in texters)
    assert all("consents" in lead.lead_fields(f"lead-{lead.index}") for lead in texters)
    assert len({lead.phone for lead in leads}) == 360
    # No other demo number lands in a texting persona's exchange.
    assert not [lead for lead in leads if lead.texts is None and lead.phone[5:7] == "77"]


@pytest.mark.timeout(60)
def test_a_later_run_texts_numbers_not_opted_out_before_with_its_own_consent_ids() -> None:
    # The demo's database keeps opt-outs (the gate restores them at start): a number that
    # texted STOP in an earlier run is never chosen again, and each run's consent is its lead's.
    book = load_rulebook()
    first = [lead for lead in with_texters(demo_leads(360), INSIDE_EVERY_WINDOW, book) if lead.texts is not None]
    stop = next(lead for lead in first if lead.texts is TextReply.STOP)
    later = with_texters(demo_leads(360), INSIDE_EVERY_WINDOW, book, opted_out={stop.phone})
    texters = [lead for lead in later if lead.texts is not None]
    assert [lead.texts for lead in texters] == [lead.texts for lead in first]
    assert stop.phone not in {lead.phone for lead in later}
    assert len({lead.phone for lead in later}) == 360
    ids = {str(texters[0].lead_fields(run_lead)["consents"]) for run_lead in ("demo-a-0001", "demo-b-0001")}
    assert len(ids) == 2


def test_the_gate_clock_moves_only_when_no_zone_is_open() -> None:
    book = load_rulebook()
    leads = demo_leads(360)
    assert len(dialable_at(leads, INSIDE_EVERY_WINDOW, book)) == sum(1 for lead in leads if lead.dnc is None)
    assert gate_start(leads, INSIDE_EVERY_WINDOW, book, 60) == INSIDE_EVERY_WINDOW
    # 10:00 UTC: 5 a.m. in New York, midnight in Honolulu; New York opens at 8:00 (13:00 UTC).
    early = datetime(2026, 11, 24, 10, 7, tzinfo=UTC)
    assert dialable_at(leads, early, book) == []
    assert gate_start(leads, early, book, 60) == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("now", "start", "open_then"), [
    # Mountain to Hawaii are open (9 p.m. in New York closed at 02:00 UTC): the real clock.
    ("2026-11-30T03:00", None, "CO, AZ, CA, WA, AK, HI"),
    # Only Hawaii (and Alaska before 06:00): fewer than 60 leads; New York opens at 8 a.m. EST.
    ("2026-11-30T05:30", "2026-11-30T13:00", "NY, GA, OH"),
    ("2026-11-30T07:30", "2026-11-30T13:00", "NY, GA, OH"),
    ("2026-11-30T12:30", "2026-11-30T13:00", "NY, GA, OH"),
    ("2026-11-30T12:59:59", "2026-11-30T13:00", "NY, GA, OH"),
    ("2026-11-30T20:55", None, "NY, GA, OH, IL, TX, MN, CO, AZ, CA, WA, AK, HI"),
    # Daylight saving time starts at 2 a.m. on 8 March 2026: New York opens at 12:00 UTC.
    ("2026-03-08T07:30", "2026-03-08T12:00", "NY, GA, OH"),
    ("2026-07-04T06:10", "2026-07-04T12:00", "NY, GA, OH"),
    # It ends at 2 a.m. on 1 November 2026: 13:00 UTC again.
    ("2026-11-01T07:30", "2026-11-01T13:00", "NY, GA, OH"),
])
def test_the_gate_clock_plan_and_what_the_demo_says_about_it(now: str, start: str | None, open_then: str) -> None:
    book = load_rulebook()
    leads = demo_leads(360)
    plan = gate_plan("auto", leads, book, utc(now), 180)
    assert plan.start == (None if start is None else utc(start))
    assert f"in {open_then}" in plan.message
    if start is None:
        assert plan.message.startswith(f"Gate clock: real ({utc(now):%H:%M} UTC)")
        assert len(dialable_at(leads, utc(now), book)) >= MIN_DIALABLE
    else:
        said = len(dialable_at(leads, utc(now), book))
        assert said < MIN_DIALABLE
        assert plan.message.startswith(f"It is {utc(now):%H:%M} UTC: only {said} demo leads")
        assert f"the gate's clock starts at {utc(start):%H:%M} UTC" in plan.message
        assert len(dialable_at(leads, utc(start), book)) >= MIN_DIALABLE
        # `now` keeps the real clock whatever it dials.
        assert gate_plan("now", leads, book, utc(now), 180).start is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("count", [12, 48])
def test_a_small_lead_list_moves_the_gate_clock_too(count: int) -> None:
    book = load_rulebook()
    leads = demo_leads(count)
    plan = gate_plan("auto", leads, book, utc("2026-11-30T07:30"), 180)
    assert plan.start is not None and plan.start.date() == utc("2026-11-30T07:30").date()
    open_leads = len(dialable_at(leads, plan.start, book))
    assert open_leads >= sum(1 for lead in leads if lead.dnc is None) // 2 and open_leads > 0


@pytest.mark.timeout(60)
def test_the_gate_clock_plan_says_when_states_close_during_the_run_and_takes_an_instant() -> None:
    book = load_rulebook()
    leads = demo_leads(360)
    # 20:55 in New York: the last launch is at 20:57 (3 min before 21:00), two minutes into the run.
    closing = gate_plan("auto", leads, book, utc("2026-11-30T01:55"), 180)
    assert closing.start is None and "NY, GA, OH reach their last launch (3 min before closing)" in closing.message
    assert "NY" in gate_plan("auto", leads, book, utc("2026-11-30T01:57"), 180).message
    assert "NY" not in gate_plan("auto", leads, book, utc("2026-11-30T01:57:00.5"), 180).message
    nobody = gate_plan("now", leads, book, utc("2026-11-30T09:00"), 180)
    assert nobody.start is None and "0 demo leads" in nobody.message and "block every dial" in nobody.message
    chosen = gate_plan("2026-11-24T14:00-05:00", leads, book, utc("2026-11-30T09:00"), 180)
    assert chosen.start == INSIDE_EVERY_WINDOW
    assert chosen.message.startswith("Gate clock: simulated, starting at 2026-11-24 19:00 UTC")
    with pytest.raises(UserError, match="--gate-time must be"):
        gate_plan("tomorrow", leads, book, utc("2026-11-30T09:00"), 180)


@pytest.mark.timeout(60)
def test_the_console_lines_start_the_asterisk_the_demo_stopped_and_serve_its_settings() -> None:
    settings = from_environment({})
    stopped = console_text(settings, "pw", asterisk_stopped=True).splitlines()
    start, serve = stopped[2], stopped[3]
    assert "dialer asterisk start" in start and serve.endswith("dialer serve")
    assert f"DIALER_SIP_CREDENTIALS_FILE='{settings.sip_credentials_file}'" in serve
    assert "dialer asterisk start" not in console_text(settings, "pw", asterisk_stopped=False)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.timeout(30)
def test_the_progress_line_fits_the_terminal_so_it_is_rewritten_in_place() -> None:
    terminal = Terminal()
    display = ProgressDisplay(terminal, columns=lambda: 80)
    sample = Progress(elapsed=75, seconds=180, dials=123, people=45, machines=20, connected=44, abandoned=1, lines=9,
                      agents_busy=4, agents_logged_in=5, occupancy=0.8, blocked={"outside_calling_window": 16,
                                                                                   "dnc_federal": 2})
    display(sample)
    display(sample)
    display.close()
    rows = terminal.getvalue().split("\r\x1b[K")[1:]
    assert len(rows) == 2 and all(len(row.rstrip("\n")) == 79 for row in rows)
    assert rows[0].startswith("1:15/3:00  dials 123") and terminal.getvalue().endswith("\n")


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
    assert summary.campaign_id in text and "abandon rate" in text and "dialed 0.5 min" in text
    assert "opted out by text" in text
    assert "dials" in progress_line(samples[-1])
    assert json.loads(json.dumps(summary.to_json()))["dials"] == summary.dials  # `dialer demo --json`
    assert (summary.recording_example or "").startswith(str(settings.recordings_dir))
