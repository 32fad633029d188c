"""The agent's console in a real Chromium against the whole dialer (real Asterisk, PostgreSQL,
Redis): an agent signs in, the page's phone registers; a CRM's click-to-call rings the page, it
answers, the lead answers, the pop shows the lead's record, audio flows both ways, the agent's
disposition reaches the CRM once; the agent goes ready for a campaign and a campaign call and an
inbound call pop the right records. Screenshots of the console go to docs/."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Page

from crm_bridge.store import TokenRole
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from dialer.web.users import UserRole, UserStore
from tests.audio import SOUNDS, analyse_wav, contains_audio, recorded_audio, recorded_channels
from tests.browser.conftest import MICROPHONE_WAV
from tests.browser.phone import BrowserPhone
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW, Floor
from tests.controller.conftest import dialer_settings, mark_lists_fresh

DOCS = Path(__file__).resolve().parents[2] / "docs"
PASSWORD = "agent console password"
ENDPOINT = "agent1003-web"
SILENT_ENDPOINT = "agent1016"  # an endpoint of the provisioned Asterisk no test registers a phone on
AGENCY_NUMBER = "+18885550123"
STRETCH_S = 3.0
HOLD_SECONDS = 4.0
HOLD_MUSIC = SOUNDS / "moh" / "hold-music.wav"


@dataclasses.dataclass
class Console:
    floor: Floor
    username: str
    agent_id: str

    def url(self, path: str) -> str:
        return str(self.floor.client.make_url(path))


@pytest.fixture
async def console(asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str,
                  tmp_path: Path) -> AsyncIterator[Console]:
    """The whole dialer (click-to-call and campaigns) serving the console, with an agent on the
    browser endpoint `agent1003-web` and that agent's account."""
    settings = dataclasses.replace(dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path),
                                   sip_credentials_path=str(asterisk.credentials_file))
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=20.0,
                               lead_ring=15.0), drain_seconds=5, campaign_overrides=CAMPAIGN_TUNING) as services:
        await mark_lists_fresh(services, GATE_NOW)
        crm = (await services.store.issue_token(TokenRole.CRM, label="console tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            floor = Floor(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])
            agent_id = await floor.agent(ENDPOINT)
            username = f"ann-{floor.suffix}"
            await UserStore(services.store).create(username, UserRole.AGENT, PASSWORD, agent_id=agent_id)
            yield Console(floor, username, agent_id)


async def sign_in(page: Page, console: Console, *, screenshot: bool = False) -> BrowserPhone:
    """Open the console (redirected to sign in), sign in, wait for the phone to register."""
    await page.goto(console.url("/agent"))
    await page.wait_for_url(re.compile(r"/signin\?next=/agent$"))
    await page.get_by_label("User name").fill(console.username)
    await page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        await page.screenshot(path=str(DOCS / "agent-console-signin.png"))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/agent", wait_until="commit")
    await page.wait_for_function("() => window.consoleState && window.consoleState.registered", timeout=20_000)
    assert await page.locator("#registration").text_content() == "registered"
    return BrowserPhone(page)


async def wait_text(page: Page, selector: str, expected: str, within: float = 20.0) -> None:
    await page.locator(selector).filter(has_text=expected).wait_for(timeout=within * 1000)


async def crm_post(console: Console, path: str, body: dict[str, Any]) -> dict[str, Any]:
    floor = console.floor
    response = await floor.client.post(path, json=body, headers=floor.auth())
    assert response.status in (200, 201, 202), await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


def best_stretch(recording: bytes, source: Path) -> float:
    whole_seconds = int(analyse_wav(source).seconds - STRETCH_S)
    return max(contains_audio(recording, source, start=float(start), seconds=STRETCH_S)
               for start in range(whole_seconds + 1))


@pytest.mark.timeout(300)
async def test_the_agent_console_takes_click_to_call_campaign_and_inbound_calls(
        console: Console, page: Page) -> None:
    floor = console.floor
    phone = await sign_in(page, console, screenshot=True)

    # ---- lead search, and a dial the gate blocks: the reasons in words ---------------------------
    early_lead = f"lead-{uuid.uuid4().hex[:12]}"
    await floor.seed_many([("lead_upsert", {
        "lead_id": early_lead, "first_name": "Wei", "last_name": "Chen", "phones": ["+14155551130"],
        "state": "CA", "zip": "94110", "owner_agent_id": console.agent_id})])
    await page.get_by_label("Name, phone or e-mail").fill("wei chen")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("button", name="Open Wei Chen").click()
    await wait_text(page, "#lead-name", "Wei Chen")
    await page.get_by_role("button", name="Call +14155551130").click()  # 6:30 a.m. in San Francisco
    await wait_text(page, "#dial-problem", "Not dialed: the compliance check blocked this call.")
    blocked = await page.locator("#dial-problem").text_content() or ""
    assert "outside federal hours" in blocked and "America/Los_Angeles" in blocked, blocked
    assert await floor.fetch("SELECT 1 FROM calls WHERE lead_id = $1", early_lead) == []

    # ---- a CRM's click-to-call rings the page; the pop shows the lead's record -----------------
    lead_phone = "+13055551130"  # Miami (all-party consent: a recording notice); answers, talks 30 s
    lead_id = f"lead-{uuid.uuid4().hex[:12]}"
    await floor.seed_many([("lead_upsert", {
        "lead_id": lead_id, "first_name": "Maria", "last_name": "Lopez", "phones": [lead_phone, "+13055550142"],
        "state": "FL", "zip": "33130", "address_line1": "1200 Brickell Ave", "city": "Miami",
        "email": "maria.lopez@example.com", "owner_agent_id": console.agent_id,
        "consents": [{"consent_id": f"pewc-{lead_id}", "kind": "pewc", "phone": lead_phone,
                      "obtained_at": "2026-10-02T15:04:00Z", "source": "web form acme-quotes.example"}]})])
    placed = await crm_post(console, "/v1/calls", {"lead_id": lead_id, "agent_id": console.agent_id})
    call_id = placed["call_id"]
    await wait_text(page, "#lead-name", "Maria Lopez")
    assert await page.evaluate("() => document.activeElement.id") == "lead-name"  # focus moves to the pop
    await phone.wait_for("call", "ringing", within=15)
    await page.get_by_role("button", name="Answer (Alt+A)").click()
    await phone.wait_for("call", "active")
    await wait_text(page, "#call-progress", "connected", within=30)
    await wait_text(page, "#call-timer", "00:0")  # the call's timer runs from the connection
    await wait_text(page, "#lead-address", "1200 Brickell Ave, Miami")
    await wait_text(page, "#lead-state", "FL 33130")
    await wait_text(page, "#lead-stage", "new_lead")
    assert await page.locator("#lead-phones li").count() == 2
    await wait_text(page, "#lead-consents", "PEWC on file")
    await page.locator(f"#lead-calls tr[data-call-id='{call_id}']").wait_for(timeout=15_000)  # this call, logged
    await page.locator("#script li").first.wait_for(timeout=15_000)
    script = await page.locator("#script").text_content() or ""
    assert "record" in script.lower(), script  # the gate's recording notice, as a script to read

    await asyncio.sleep(6)  # both sides talk
    stats = await phone.stats()
    assert stats is not None and stats["inbound"]["totalAudioEnergy"] > 0, stats
    await page.locator("#notes").fill("Wants a Medigap quote; call back after 5.")
    await page.screenshot(path=str(DOCS / "agent-console.png"))

    # A double click stores one disposition (one Idempotency-Key per call).
    await page.locator("#dispositions button[data-code='contacted']").dblclick()
    await wait_text(page, "#dispo-result", "Saved")
    # Hold from the page: the lead hears music on hold (found in the recording below).
    await page.get_by_role("button", name="Hold").click()
    await page.locator("#hold[aria-pressed='true']").wait_for(timeout=10_000)
    await asyncio.sleep(HOLD_SECONDS)
    await page.get_by_role("button", name="Hold").click()
    await page.locator("#hold[aria-pressed='false']").wait_for(timeout=10_000)
    await page.get_by_role("button", name="Hang up (Alt+H)").click()
    await phone.wait_for("call", "ended", "idle")
    ended = await floor.services.store.get_call(call_id)
    async with asyncio.timeout(30):
        while ended is None or ended.ended_at is None:
            await asyncio.sleep(0.2)
            await floor.services.outbox.flush(5)
            ended = await floor.services.store.get_call(call_id)
    response = await floor.client.get(f"/v1/calls/{call_id}/dispositions", headers=floor.auth())
    dispositions = (await response.json())["dispositions"]
    assert [(row["code"], row["notes"]) for row in dispositions] == [
        ("contacted", "Wants a Medigap quote; call back after 5.")]
    assert dispositions[0]["agent_id"] == console.agent_id
    rows = await floor.recordings(call_id)
    audio = recorded_audio(rows[0]["storage_uri"], rows[0]["recording_id"], floor.services.settings.recording_keys_dir)
    # The agent's side alone (the recording keeps the two sides apart) or the mix, whichever
    # holds the microphone best: the lead's side talking over it lowers the mix's figure.
    sides = recorded_channels(rows[0]["storage_uri"], rows[0]["recording_id"],
                              floor.services.settings.recording_keys_dir)
    figures = [best_stretch(side, MICROPHONE_WAV) for side in [audio, *sides]]
    heard = max(figures)  # measured: mix 0.30-0.49, the agent's own channel ~0.6, the lead's ~0.13
    assert heard > 0.3, f"the agent's microphone is not in the call's recording (mix, then each channel: {figures})"
    music = contains_audio(audio, HOLD_MUSIC, start=0.0, seconds=1.5)
    assert music > 0.3, f"no music on hold in the call's recording (best correlation {music:.2f})"
    # The agent's own session may play its own call's recording (the history's Play button).
    played = await page.evaluate("""async (id) => {
        const response = await fetch(`/v1/recordings/${id}/audio`);
        return [response.status, response.headers.get("Content-Type"), (await response.arrayBuffer()).byteLength];
    }""", rows[0]["recording_id"])
    assert played[0] == 200 and played[1] == "audio/ogg" and played[2] > 10_000, played

    # ---- ready for a campaign: a campaign call pops its lead --------------------------------------
    campaign_id = await floor.campaign()
    campaign_leads = await floor.leads(campaign_id, ["+12125551115"], state="NY", zip="10001")
    # Picked from the agent's own list (GET /v1/agents/{id}/campaigns), read again as it opens.
    await page.get_by_label("Campaigns").fill("")
    await page.get_by_label("Add a campaign").focus()
    await page.locator(f"#campaign-pick option[value='{campaign_id}']").wait_for(state="attached", timeout=10_000)
    await page.get_by_label("Add a campaign").select_option(campaign_id)
    assert await page.get_by_label("Campaigns").input_value() == campaign_id
    await page.get_by_role("button", name="Log in").click()
    await wait_text(page, "#agent-state", "ready", within=20)
    await crm_post(console, f"/v1/campaigns/{campaign_id}/start", {})
    campaign_lead = campaign_leads["+12125551115"]
    await page.locator(f"#pop[data-lead-id='{campaign_lead}']").wait_for(timeout=30_000)
    await wait_text(page, "#lead-name", "Pat Doe")
    await wait_text(page, "#call-kind", campaign_id)
    await wait_text(page, "#agent-state", "on a call", within=15)
    await wait_text(page, "#call-progress", "connected")
    await wait_text(page, "#lead-consents", "none on file")  # nothing of Maria's is left on the screen
    assert "Lopez" not in (await page.locator("#pop").text_content() or "")
    await page.screenshot(path=str(DOCS / "agent-console-campaign.png"))
    await page.keyboard.press("Alt+2")  # appointment set, by hot key
    await wait_text(page, "#dispo-result", "Saved: appointment set")
    await crm_post(console, f"/v1/campaigns/{campaign_id}/stop", {})
    await wait_text(page, "#agent-state", "ready", within=30)
    await floor.services.outbox.flush(10)
    moved = await floor.client.get(f"/v1/leads/{campaign_lead}", headers=floor.auth())
    assert (await moved.json())["pipeline_stage"] == "appt_set"  # the pipeline moved as the CRM expects
    # The measure tells music from none: a call nobody held has none of it.
    campaign_call = (await page.evaluate("() => window.consoleState.pops"))[-1]["call_id"]
    rows = await floor.recordings(campaign_call)
    unheld = recorded_audio(rows[0]["storage_uri"], rows[0]["recording_id"], floor.services.settings.recording_keys_dir)
    without = contains_audio(unheld, HOLD_MUSIC, start=0.0, seconds=1.5)
    assert without < music / 2, f"music on hold found where nobody held ({without:.2f} vs {music:.2f} held)"
    print(f"hold music: {music:.2f} in the held call, {without:.2f} in a call not held; microphone {heard:.2f}")

    # ---- an inbound call from a known lead pops that lead ------------------------------------------
    inbound_phone = "+12125550179"
    inbound_lead = f"lead-{uuid.uuid4().hex[:12]}"
    await floor.seed_many([("lead_upsert", {"lead_id": inbound_lead, "first_name": "Grace", "last_name": "Kim",
                                            "phones": [inbound_phone], "state": "NY"})])
    await floor.services.ari.originate(
        f"carrier-{uuid.uuid4().hex[:8]}", f"PJSIP/{AGENCY_NUMBER}@dialer", context="pstn-line",
        extension="2125551108", priority=1, caller_id=inbound_phone, ring_timeout=20)
    await page.locator(f"#pop[data-lead-id='{inbound_lead}']").wait_for(timeout=30_000)
    await wait_text(page, "#lead-name", "Grace Kim")
    await wait_text(page, "#call-kind", "Inbound call")
    await wait_text(page, "#lead-consents", "none on file")
    await wait_text(page, "#lead-time", "America/New_York")
    await page.screenshot(path=str(DOCS / "agent-console-inbound.png"))
    # A disposition clicked while the network is down is kept and sent once it is back, once.
    inbound_call = (await page.evaluate("() => window.consoleState.pops"))[-1]["call_id"]
    # The callback picker opens on the lead's today (New York), the date field showing that day
    # whose times it lists (not empty above them).
    await page.wait_for_function("() => document.getElementById('callback-date').value !== ''", timeout=15_000)
    today_there = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    assert await page.get_by_label("Callback on").input_value() == today_there
    assert await page.get_by_label("Callback on").get_attribute("min") == today_there
    # A callback: the picker offers only the times the gate allows (the server applies its windows:
    # 8 a.m.-9 p.m. New York for this lead), once they have come.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    await page.get_by_label("Callback on").fill(tomorrow)
    await page.locator("#callback-time option[value^='20']").first.wait_for(state="attached", timeout=15_000)
    offered = await page.locator("#callback-time option").evaluate_all("(options) => options.map((o) => o.value)")
    local_hours = {datetime.fromisoformat(value).astimezone(ZoneInfo("America/New_York")).hour for value in offered}
    assert local_hours == set(range(8, 21)), sorted(local_hours)
    assert await page.get_by_label("Callback on").input_value() == tomorrow
    await page.get_by_label("at (lead's time)").select_option(index=2)  # 09:00
    await page.context.set_offline(True)
    await page.locator("#dispositions button[data-code='callback']").click()
    await wait_text(page, "#dispo-result", "Offline")
    await page.context.set_offline(False)
    await wait_text(page, "#dispo-result", "Saved: callback", within=30)
    await floor.services.outbox.flush(10)
    rows = await floor.fetch("SELECT code, callback_at FROM dispositions WHERE call_id = $1", inbound_call)
    assert [row["code"] for row in rows] == ["callback"]
    assert rows[0]["callback_at"].astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") == "09:00"
    pops = await page.evaluate("window.consoleState.pops.map((pop) => pop.lead_id)")
    assert pops[0] == lead_id and campaign_lead in pops and pops[-1] == inbound_lead

    # ---- an unknown caller: the new-lead form fills in the lead the dialer made for the number ----
    await wait_text(page, "#agent-state", "ready", within=30)
    stranger = f"+1646559{uuid.uuid4().int % 10000:04d}"  # a number no lead of the shared database has
    await floor.services.ari.originate(
        f"carrier-{uuid.uuid4().hex[:8]}", f"PJSIP/{AGENCY_NUMBER}@dialer", context="pstn-line",
        extension="2125551110", priority=1, caller_id=stranger, ring_timeout=20)
    await wait_text(page, "#lead-name", f"New caller {stranger}")
    form = page.locator("#new-lead")
    await form.get_by_label("First name").fill("Olga")
    await form.get_by_label("Last name").fill("Ivanova")
    await form.get_by_label("State").fill("ny")
    await page.screenshot(path=str(DOCS / "agent-console-new-caller.png"))
    await form.get_by_role("button", name="Save the caller").click()
    await wait_text(page, "#lead-name", "Olga Ivanova")
    await wait_text(page, "#lead-state", "NY")
    stranger_lead = (await page.evaluate("() => window.consoleState.pops"))[-1]["lead_id"]
    row = (await floor.fetch("SELECT first_name, last_name, state, owner_agent_id, phones FROM leads "
                             "WHERE lead_id = $1", stranger_lead))[0]
    assert (row["first_name"], row["last_name"], row["state"], row["owner_agent_id"]) == (
        "Olga", "Ivanova", "NY", console.agent_id)
    assert list(row["phones"]) == [stranger]
    await page.get_by_role("button", name="Log out").click()
    await wait_text(page, "#agent-state", "logged out", within=30)


@pytest.mark.timeout(120)
async def test_the_console_offers_the_agents_campaigns_and_says_why_its_phone_cannot_be_called(
        console: Console, page: Page) -> None:
    """An agent whose phone nobody registered (`agent1016`) picks the test's campaign from the
    list the console reads, and the login is refused in words the agent can act on."""
    floor = console.floor
    agent_id = await floor.agent(SILENT_ENDPOINT)
    username = f"sam-{floor.suffix}"
    await UserStore(floor.services.store).create(username, UserRole.AGENT, PASSWORD, agent_id=agent_id)
    campaign_id = await floor.campaign(dial_mode="predictive")
    await page.goto(console.url("/agent"))
    await page.wait_for_url(re.compile(r"/signin\?next=/agent$"))
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/agent", wait_until="commit")
    await wait_text(page, "#stream", "live")

    option = page.locator(f"#campaign-pick option[value='{campaign_id}']")
    await option.wait_for(state="attached", timeout=10_000)
    assert await option.text_content() == "Final expense outreach (predictive, not dialing)"
    await page.get_by_label("Add a campaign").select_option(campaign_id)
    assert await page.get_by_label("Campaigns").input_value() == campaign_id
    await page.get_by_role("button", name="Log in").click()
    await wait_text(page, "#state-problem", "Your softphone is not registered — open the phone and sign in to it, "
                    "then try again.")
    assert "softphone_not_registered" not in (await page.locator("body").inner_text())
    await wait_text(page, "#agent-state", "logged out")
    # Refused, so not remembered as the campaigns to offer next time.
    assert await page.evaluate("localStorage.getItem('dialer.campaigns')") is None

    # A click-to-call is accepted (202) before the phone is rung; its failure says why the same way.
    lead_phone = f"+1212555{uuid.uuid4().int % 10000:04d}"  # New York: inside the calling window
    await floor.seed_many([("lead_upsert", {"lead_id": f"lead-{uuid.uuid4().hex[:12]}", "first_name": "Ida",
                                            "last_name": "Moss", "phones": [lead_phone], "state": "NY",
                                            "owner_agent_id": agent_id})])
    await page.get_by_label("Name, phone or e-mail").fill("ida moss")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("button", name="Open Ida Moss").click()
    await page.get_by_role("button", name=f"Call {lead_phone}").click()
    await wait_text(page, "#dial-problem", "Not dialed: Your softphone is not registered — open the phone")
