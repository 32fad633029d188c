"""The supervisor's console in a real Chromium against the whole dialer (real Asterisk,
PostgreSQL, Redis): a supervisor signs in; an agent's live call (a baresip agent sending a
440 Hz tone, the simulated network's person talking) appears on the wallboard within 1 s; the
supervisor clicks Listen and the page's phone hears both parties; Whisper and Barge switch on the
same leg (no redial) and the agent then hears the supervisor; the KPI page for a seeded day
shows exactly the recount's numbers; the pipeline board moves the lead when the agent sets an
appointment; the recording plays and seeks. Screenshots go to docs/ (wallboard, kpi, pipeline)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import re
import subprocess
import time
import uuid
import wave
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page

from crm_bridge import reports
from crm_bridge.store import TokenRole
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from dialer.web.users import UserRole, UserStore
from tests.audio import analyse_wav, contains_audio, recorded_audio
from tests.browser.conftest import MICROPHONE_WAV
from tests.browser.phone import BrowserPhone
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW, Floor, agent_phone  # noqa: F401 (fixture)
from tests.controller.conftest import dialer_settings, mark_lists_fresh
from tests.monitor.conftest import rms_without, tone_share
from tests.reports.seeding import build_day, recount, write_day

DOCS = Path(__file__).resolve().parents[2] / "docs"
PASSWORD = "supervisor console password"
AGENT_ENDPOINT = "agent1007"
KPI_DAY = date(2026, 10, 14)
KPI_ZONE = "America/New_York"
# Records what the page's phone receives for `ms` (MediaRecorder, Opus in WebM), as base64.
RECORD_JS = """async (ms) => {
  const stream = document.getElementById('monitor-audio').srcObject;
  const recorder = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' });
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  await new Promise((resolve) => setTimeout(resolve, ms));
  recorder.stop();
  await stopped;
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}"""
AGENT_HZ = 440.0


async def page_heard(page: Page, folder: Path, ms: int) -> Path:
    """What the supervisor's page received over `ms`, as an 8 kHz mono WAV."""
    webm, wav = folder / "heard.webm", folder / "heard.wav"
    webm.write_bytes(base64.b64decode(await page.evaluate(RECORD_JS, ms)))
    await asyncio.to_thread(subprocess.run, ["ffmpeg", "-loglevel", "error", "-y", "-i", str(webm), "-ar", "8000",
                                              "-ac", "1", str(wav)], check=True)
    return wav


@dataclasses.dataclass
class Console:
    floor: Floor
    username: str
    agent_id: str
    seeded_campaign: str
    seeded: Any
    agent_phone: Any

    def url(self, path: str) -> str:
        return str(self.floor.client.make_url(path))


@pytest.fixture
async def console(asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
                  agent_phone: Callable[[str], Any]) -> AsyncIterator[Console]:  # noqa: F811
    settings = dataclasses.replace(dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path),
                                   sip_credentials_path=str(asterisk.credentials_file))
    baresip = agent_phone(AGENT_ENDPOINT)
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=20.0,
                               lead_ring=15.0), drain_seconds=5, campaign_overrides=CAMPAIGN_TUNING) as services:
        await mark_lists_fresh(services, GATE_NOW)
        crm = (await services.store.issue_token(TokenRole.CRM, label="supervisor console tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            floor = Floor(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])
            agent_id = await floor.agent(AGENT_ENDPOINT)
            username = f"sue-{floor.suffix}"
            await UserStore(services.store).create(username, UserRole.SUPERVISOR, PASSWORD)
            # A seeded day of CRM rows for the KPI page (its own campaigns, a day no other test uses).
            period = reports.period_of("range", KPI_ZONE, GATE_NOW, first=KPI_DAY)
            day = build_day(period.start, prefix=f"kpi{floor.suffix}")
            connection = await asyncpg.connect(pg_dsn)
            try:
                await write_day(connection, day)
            finally:
                await connection.close()
            yield Console(floor, username, agent_id, day.campaigns[0], (day, period), baresip)


async def sign_in(page: Page, console: Console) -> None:
    await page.set_viewport_size({"width": 1400, "height": 1000})
    await page.goto(console.url("/supervisor"))
    await page.wait_for_url(re.compile(r"/signin\?next=/supervisor$"))
    await page.get_by_label("User name").fill(console.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/supervisor", wait_until="commit")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready "
                                 "&& window.supervisorState.streamOpen", timeout=20_000)


async def monitor_active(page: Page, mode: str, within: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        monitor = await page.evaluate("() => window.supervisorState.monitor")
        if monitor and monitor.get("mode") == mode and monitor.get("mode_active"):
            return dict(monitor)
        if time.monotonic() > deadline:
            raise AssertionError(f"monitor not active in {mode}: {monitor}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_supervisor_console(console: Console, page: Page, tmp_path: Path) -> None:
    floor = console.floor
    # A campaign with a simulated agent on the floor (busy numbers: the agent stays ready), for
    # the wallboard's agents and campaigns.
    sim_agent = await floor.agent("Local/sim11@agent-sim")
    sim_token = await floor.token(TokenRole.AGENT, sim_agent)
    campaign_id = await floor.campaign(dial_mode="progressive")
    await floor.leads(campaign_id, [f"+1646{700 + n}3100" for n in range(30)], state="NY")
    response = await floor.client.post(f"/v1/agents/{sim_agent}/login", json={"campaign_ids": [campaign_id]},
                                       headers=floor.auth(sim_token))
    assert response.status == 202
    await floor.wait_for(lambda: (s := floor.campaigns.agent_state(sim_agent)) is not None
                         and s.state.value == "ready", 20, "simulated agent ready")
    assert (await floor.client.post(f"/v1/campaigns/{campaign_id}/start", headers=floor.auth())).status == 202
    await sign_in(page, console)
    await page.locator(f'#agents tr[data-agent-id="{sim_agent}"]').wait_for(timeout=5_000)

    # ---- a live call appears on the wallboard within a second ----------------------------------
    lead_phone = "+12128441130"  # New York; a person: rings 1 s, answers, talks 30 s
    lead_id = f"lead-{uuid.uuid4().hex[:12]}"
    await floor.seed_many([("lead_upsert", {"lead_id": lead_id, "first_name": "Walter", "last_name": "Ng",
                                            "phones": [lead_phone], "state": "NY"})])
    response = await floor.client.post("/v1/calls", json={"lead_id": lead_id, "agent_id": console.agent_id},
                                       headers=floor.auth())
    placed_ms = time.time() * 1000
    assert response.status == 202, await response.text()
    call_id = (await response.json())["call_id"]
    row = page.locator(f'#calls tr[data-call-id="{call_id}"]')
    await row.wait_for(timeout=5_000)
    seen_ms = await page.evaluate("(id) => window.supervisorState.firstSeen[id]", call_id)
    print(f"wallboard: call on the page {seen_ms - placed_ms:.0f} ms after it was placed")
    assert seen_ms - placed_ms < 1000
    await page.locator(f'#calls tr[data-call-id="{call_id}"][data-connected="true"]').wait_for(timeout=20_000)

    # ---- listen: the page's phone hears the agent's tone and the lead's voice ------------------
    await row.locator('button[data-mode="listen"]').click()
    try:
        await page.wait_for_function("() => window.phone", timeout=15_000)
    except Exception:
        raise AssertionError(await page.locator("#shell-status").text_content()) from None
    phone = BrowserPhone(page)
    await phone.wait_for("call", "active", within=15)
    listen = await monitor_active(page, "listen")
    heard = await page_heard(page, tmp_path, 4000)
    # The agent's tone, and speech left once the tone is filtered out: the lead (as the monitor
    # tests measure a desk phone; G.711 noise on the tone alone is about 70).
    agent_share, lead_rms = tone_share(heard, AGENT_HZ), rms_without(heard, AGENT_HZ)
    print(f"listen: the page heard the agent's tone (share {agent_share:.2f}) and the lead (rms {lead_rms:.0f})")
    assert agent_share > 0.05 and lead_rms > 500
    stats = await phone.stats()
    assert stats is not None and stats["inbound"]["bytesReceived"] > 10_000
    await page.locator(f'#campaigns tr[data-campaign-id="{campaign_id}"]').wait_for(timeout=5_000)
    # The test database holds every test's campaigns, stopped ones too: the wall screen's
    # "Running campaigns only" shows this floor's running one alone, as docs/wallboard.png does.
    await page.get_by_label("Running campaigns only").check()
    listed = page.locator("#campaigns tbody tr")
    await page.wait_for_function("(id) => [...document.querySelectorAll('#campaigns tbody tr')]"
                                 ".map((row) => row.dataset.campaignId).join() === id", arg=campaign_id, timeout=5_000)
    assert await listed.count() == 1
    await page.screenshot(path=str(DOCS / "wallboard.png"), full_page=True)
    # Campaign control from the wallboard: Pause, audited under the supervisor.
    await page.locator(f'#campaigns tr[data-campaign-id="{campaign_id}"] button').click()
    await page.locator(f'#campaigns tr[data-campaign-id="{campaign_id}"]').filter(has_text="paused").wait_for(
        timeout=5_000)
    assert floor.campaigns.campaigns[campaign_id].paused

    # ---- whisper, then barge: the same leg (no redial) ----------------------------------------
    await row.locator('button[data-mode="whisper"]').click()
    await monitor_active(page, "whisper")
    await asyncio.sleep(4)
    await row.locator('button[data-mode="barge"]').click()
    barge = await monitor_active(page, "barge")
    await asyncio.sleep(5)
    assert (await phone.status())["callsAnswered"] == 1  # switching modes never redialed
    assert barge["monitor_id"] == listen["monitor_id"]
    assert [step["mode"] for step in barge["modes"]] == ["listen", "whisper", "barge"]
    stopped_at = time.time()
    await page.locator("#monitor-stop").click()
    await page.locator("#monitor-status").filter(has_text="ended").wait_for(timeout=10_000)

    # The agent heard the supervisor's microphone (whispered and barged) on its own phone.
    hangup_at = time.time()
    response = await floor.client.post(f"/v1/calls/{call_id}/hangup", headers=floor.auth())
    assert response.status in (200, 202)
    await asyncio.to_thread(console.agent_phone.wait_for_call_end, 1, 30.0)
    score = agent_heard_supervisor(console.agent_phone.heard_files()[-1])
    print(f"the agent heard the supervisor's microphone: best match {score:.2f}")
    assert score > 0.3

    # ---- the pipeline moves the lead when the agent sets an appointment ------------------------
    await page.locator('nav.tabs button[data-tab="pipeline"]').click()
    await page.locator('#board .column[data-stage="new_lead"]').wait_for(timeout=10_000)
    agent_token = await floor.token(TokenRole.AGENT, console.agent_id)
    await floor.wait_for(lambda: floor.services.calls is not None and call_id not in floor.services.calls.runners,
                         20, "call over")
    response = await floor.client.post(f"/v1/calls/{call_id}/disposition", json={"code": "appointment_set"},
                                       headers=floor.auth(agent_token))
    assert response.status in (200, 201, 202), await response.text()
    await floor.services.outbox.flush(10)
    card = page.locator(f'#board .column[data-stage="appt_set"] .card[data-lead-id="{lead_id}"]')
    await card.wait_for(timeout=10_000)
    await page.screenshot(path=str(DOCS / "pipeline.png"), full_page=False)

    # ---- the KPI page shows the recount's numbers -----------------------------------------------
    day, period = console.seeded
    expected = recount(day, period.start, period.end, "campaign", GATE_NOW)[console.seeded_campaign]
    await page.locator('nav.tabs button[data-tab="kpis"]').click()
    await page.select_option("#kpi-period", "range")
    await page.fill("#kpi-from", KPI_DAY.isoformat())
    await page.fill("#kpi-to", KPI_DAY.isoformat())
    await page.fill("#kpi-campaign", console.seeded_campaign)
    await page.evaluate("() => { window.supervisorState.kpisLoaded = null; }")
    await page.get_by_role("button", name="Show").first.click()
    await page.wait_for_function("() => window.supervisorState.kpisLoaded", timeout=15_000)
    await page.locator("#kpi-period-text").filter(has_text=f"{KPI_DAY.isoformat()} to").wait_for(timeout=5_000)
    tiles = {name: await page.locator(f'#kpi-tiles [data-kpi="{name}"]').text_content()
             for name in ("dials", "contacts", "appts_set", "appts_held", "app_pending", "issued", "connected")}
    for name, text in tiles.items():
        assert text == str(int(expected.get(name, 0))), (name, text, expected.get(name))
    await page.screenshot(path=str(DOCS / "kpi.png"), full_page=True)

    # ---- the call's recording: nobody heard the listening supervisor; everyone heard the barge ----
    recordings = await floor.recordings(call_id)
    assert recordings
    recording = recorded_audio(recordings[0]["storage_uri"], recordings[0]["recording_id"],
                               floor.services.settings.recording_keys_dir)
    modes = {step["mode"]: datetime.fromisoformat(step["at"]).timestamp() for step in barge["modes"]}
    listening = heard_in(recording, hangup_at, modes["listen"] + 2.0, modes["whisper"] - 0.5)
    barging = heard_in(recording, hangup_at, modes["barge"] + 1.5, stopped_at - 0.5)
    print(f"the call's recording: supervisor's microphone while listening {listening:.2f}, barging {barging:.2f}")
    assert listening < 0.25 and barging > 0.3

    # ---- the call's recording plays and seeks (Range on the audio) -------------------------------
    await page.locator('nav.tabs button[data-tab="recordings"]').click()
    await page.fill("#rec-lead", lead_id)
    await page.get_by_role("button", name="Search").click()
    await page.locator(f'#recordings tr[data-recording-id="{recordings[0]["recording_id"]}"] button').click()
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=15_000)
    await page.evaluate("() => { const p = document.getElementById('player'); p.currentTime = Math.min(4, "
                        "p.duration / 2); }")
    await page.wait_for_function("() => !document.getElementById('player').seeking", timeout=10_000)
    assert await page.evaluate("() => document.getElementById('player').error") is None
    await floor.services.outbox.flush(10)
    accesses = await floor.fetch("SELECT role FROM recording_accesses WHERE recording_id = $1",
                                 recordings[0]["recording_id"])
    assert accesses and {row["role"] for row in accesses} == {"supervisor"}  # every playback audited
    changes = await floor.fetch("SELECT action, actor_role FROM campaign_changes WHERE campaign_id = $1 "
                                "ORDER BY changed_at", campaign_id)
    assert [(row["action"], row["actor_role"]) for row in changes] == [("start", "crm"), ("pause", "supervisor")]
    await floor.client.post(f"/v1/campaigns/{campaign_id}/stop", headers=floor.auth())
    await floor.client.post(f"/v1/agents/{sim_agent}/logout", headers=floor.auth(sim_token))


def heard_in(recording: bytes, ended_at: float, start: float, end: float) -> float:
    """The best match of the supervisor's microphone in the stretch [start, end) (wall-clock
    times) of a call's recording, which ends when the call was hung up at `ended_at`."""
    with wave.open(io.BytesIO(recording)) as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    length = len(frames) / 2 / rate
    first = max(0, int((length - (ended_at - start)) * rate)) * 2
    last = max(0, int((length - (ended_at - end)) * rate)) * 2
    out = io.BytesIO()
    with wave.open(out, "wb") as window:
        window.setnchannels(1)
        window.setsampwidth(2)
        window.setframerate(rate)
        window.writeframes(frames[first:last])
    seconds = int(analyse_wav(MICROPHONE_WAV).seconds - 2)
    return max(contains_audio(out.getvalue(), MICROPHONE_WAV, start=float(start_at), seconds=2.0)
               for start_at in range(seconds + 1))


def agent_heard_supervisor(heard_wav: Path) -> float:
    """The best match of the supervisor's microphone in what the agent's phone received."""
    seconds = int(analyse_wav(MICROPHONE_WAV).seconds - 3)
    data = heard_wav.read_bytes()
    return max(contains_audio(data, MICROPHONE_WAV, start=float(start), seconds=3.0) for start in range(seconds + 1))
