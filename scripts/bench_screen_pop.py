"""Screen-pop latency in the browser, on the real stack (not a test): an agent signed in to the
console (`/agent`) in headless Chromium, its browser phone registered and logged in to a
progressive campaign; N campaign calls, one after another, to people of the simulated network
who answer at once and talk a few seconds. Per call it measures, on the machine's one clock:

  - **answer to pop**: from the lead's answer (the `calls` row's `lead_answered_at`) to the pop
    drawn in the page (the console notes the moment it rendered the `screen_pop` message). This
    includes the answering-machine detection (the dialer waits for AMD's "human" verdict,
    about 2 s of the greeting and the silence after it, before it assigns the agent and pops);
  - **event to pop in the page**: from the dialer publishing the `screen_pop` message to the pop
    drawn (the agent WebSocket, the browser and the console's own work);
  - **baseline, event to raw WebSocket arrival**: the same message's arrival at a bare Python
    client of the same stream (`GET /v1/agents/{id}/events`) in the same run;
  - **AMD verdict to pop**: from the lead's answer plus AMD to the pop (`answer to pop` minus
    the time the dialer spent before publishing).

Prints p50/p99 of each and the page's ratio to the baseline.

It starts its own Asterisk instance on free ports, its own PostgreSQL database and a private
Redis key prefix (scripts/bench_stack.py), the distribution's Chromium (/usr/bin/chromium,
fake microphone), and removes them at the end. The gate's clock is fixed inside every calling
window.

    .venv/bin/python scripts/bench_screen_pop.py [--calls 30] [--talk 5]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from bench_stack import bench_stack, percentile
from playwright.async_api import async_playwright

from crm_bridge.store import TokenRole
from dialer.campaign.dialing import campaign_lead_record
from dialer.click_to_call.machine import CallTimeouts
from dialer.logs import configure_logging
from dialer.serve import dialer_services
from dialer.web.users import UserRole, UserStore

GATE_NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # a Tuesday, noon in New York
MICROPHONE = Path(__file__).resolve().parents[1] / "tests" / "browser" / "microphone.wav"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={MICROPHONE}", "--allow-loopback-in-peer-connection",
                 "--autoplay-policy=no-user-gesture-required"]
PASSWORD = "bench screen pops"
ENDPOINT = "agent1001-web"


def _line(name: str, values_ms: list[float], baseline_ms: list[float] | None = None) -> str:
    p50, p99 = percentile(values_ms, 0.5), percentile(values_ms, 0.99)
    text = f"  {name:<44} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   (n={len(values_ms)})"
    if baseline_ms:
        text += f"   x{p50 / max(percentile(baseline_ms, 0.5), 0.001):.1f} the baseline's p50"
    return text


async def _raw_stream(url: str, token: str, arrivals: dict[str, float], ready: asyncio.Event) -> None:
    """The baseline: a bare client of the agent's event stream, noting each pop's arrival."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, headers={"Authorization": f"Bearer {token}"}, heartbeat=10) as socket:
        ready.set()
        async for message in socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            if body.get("type") == "screen_pop":
                arrivals.setdefault(body["call_id"], time.time())


async def run(calls: int, talk: int) -> None:
    async with bench_stack() as stack:
        settings = dataclasses.replace(stack.settings, sip_credentials_path=str(stack.instance.credentials_file))
        overrides: dict[str, object] = {"wrap_up_seconds": 1.0, "ring_timeout": 15, "tick_seconds": 0.3}
        async with dialer_services(settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=15.0),
                                   drain_seconds=10, campaign_overrides=overrides) as services:
            await services.dnc.set_list_date("federal", GATE_NOW.date())
            await services.dnc.set_list_date("state:NY", GATE_NOW.date())
            published: dict[str, float] = {}
            inner_publish = services.agent_events.publish

            def publish(agent_id: str, message: dict[str, Any]) -> None:
                if message.get("type") == "screen_pop":
                    published.setdefault(str(message["call_id"]), time.time())
                inner_publish(agent_id, message)

            services.agent_events.publish = publish  # type: ignore[method-assign]  # note the moment of each pop

            agent_id, campaign_id = f"bench-agent-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:8]}"
            leads = [(f"lead-pop-{n}-{campaign_id}", f"+1212{200 + n:03d}10{talk:02d}") for n in range(calls)]
            await services.outbox.put_many([
                ("agent_upsert", {"agent_id": agent_id, "name": "Bench Agent", "sip_endpoint": ENDPOINT}),
                ("campaign_upsert", {"campaign_id": campaign_id, "name": "Screen pops", "caller_id": "+18885550123",
                                     "dial_mode": "progressive"}),
            ])
            for n, (lead_id, phone) in enumerate(leads):
                await services.outbox.put_many([
                    ("lead_upsert", {"lead_id": lead_id, "first_name": "Lee", "last_name": f"Number{n}",
                                     "phones": [phone], "state": "NY"}),
                    ("campaign_lead", campaign_lead_record(campaign_id, lead_id))])
            assert await services.outbox.flush(30)
            username = f"bench-{uuid.uuid4().hex[:6]}"
            await UserStore(services.store).create(username, UserRole.AGENT, PASSWORD, agent_id=agent_id)
            crm = (await services.store.issue_token(TokenRole.CRM, label="bench")).secret
            agent_token = (await services.store.issue_token(TokenRole.AGENT, agent_id=agent_id)).secret

            server = TestServer(services.app, host="127.0.0.1")
            await server.start_server()
            base = str(server.make_url("")).rstrip("/")
            arrivals: dict[str, float] = {}
            ready = asyncio.Event()
            raw = asyncio.create_task(_raw_stream(f"{base}/v1/agents/{agent_id}/events", agent_token, arrivals, ready))
            try:
                await asyncio.wait_for(ready.wait(), 10)
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                    page = await (await browser.new_context(viewport={"width": 1280, "height": 720})).new_page()
                    await page.goto(f"{base}/agent")
                    await page.get_by_label("User name").fill(username)
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.wait_for_function("() => window.consoleState && window.consoleState.registered",
                                                 timeout=30_000)
                    await page.get_by_label("Campaigns").fill(campaign_id)
                    await page.get_by_role("button", name="Log in").click()
                    await page.locator("#agent-state").filter(has_text="ready").wait_for(timeout=30_000)
                    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {crm}"}) as http:
                        async with http.post(f"{base}/v1/campaigns/{campaign_id}/start", json={}) as response:
                            assert response.status == 202, await response.text()
                        started = time.monotonic()
                        while len(await page.evaluate("() => window.consoleState.pops")) < calls:
                            if time.monotonic() - started > calls * (talk + 20):
                                raise SystemExit("not every call popped in time; see the dialer's log")
                            await asyncio.sleep(1)
                        async with http.post(f"{base}/v1/campaigns/{campaign_id}/stop", json={}) as response:
                            assert response.status in (200, 202)
                    pops = await page.evaluate("() => window.consoleState.pops")
                    version = browser.version
                    await browser.close()
            finally:
                raw.cancel()
                await server.close()
            await asyncio.sleep(talk + 2)
            await services.outbox.flush(30)
            answer_to_pop, event_to_page, event_to_raw, answer_to_event = [], [], [], []
            for pop in pops:
                call = await services.store.get_call(pop["call_id"])
                rendered = pop["rendered_epoch_ms"] / 1000
                sent = published.get(pop["call_id"])
                if call is None or call.lead_answered_at is None or sent is None:
                    continue
                answered = call.lead_answered_at.timestamp()
                answer_to_pop.append((rendered - answered) * 1000)
                answer_to_event.append((sent - answered) * 1000)
                event_to_page.append((rendered - sent) * 1000)
                if pop["call_id"] in arrivals:
                    event_to_raw.append((arrivals[pop["call_id"]] - sent) * 1000)
            print(f"{len(pops)} campaign calls popped in the console (Chromium {version}); "
                  f"each lead talks {talk} s")
            print(_line("lead answered -> pop drawn in the page", answer_to_pop))
            print(_line("  of which: answered -> pop published (AMD)", answer_to_event))
            print(_line("pop published -> drawn in the page", event_to_page, event_to_raw))
            print(_line("baseline: pop published -> raw WebSocket", event_to_raw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30, help="campaign calls (default 30)")
    parser.add_argument("--talk", type=int, default=5, help="seconds each lead talks (default 5, at least 4)")
    args = parser.parse_args()
    configure_logging("warning")
    asyncio.run(run(args.calls, max(4, args.talk)))


if __name__ == "__main__":
    main()
