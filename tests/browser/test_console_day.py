"""A working day with the consoles, in a real Chromium against the API (real PostgreSQL and
Redis; no Asterisk), for the troubles a real user trips on: the supervisor's lists rebuilt under
the keyboard, and kept on the screen as if live while the dialer is away; the agent logged out
by a restart without a word; a slow server and a double click; a disposition sent late showing
under the next call; a shared desk's pending disposition; the console open in two tabs; times
without a zone; figures of older filters kept after a failed report; the wallboard from across
the room; every action by keyboard with its focus visible, and a narrow window.

The accounts and the API come from `tests/browser/test_console_problems.py` (one API on the
test's PostgreSQL database and Redis prefix per test; the session's one Chromium)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, WebSocketRoute

from dialer.provision.ports import free_local_port
from tests.browser.conftest import StaticServer
from tests.browser.test_console_problems import (  # noqa: F401 (accounts: a fixture)
    NEEDED_ON_A_CALL,
    OUTSIDE_THE_WINDOW,
    OVERFLOW,
    PASSWORD,
    Accounts,
    Streams,
    accounts,
    sign_in_by_keyboard,
    status_line,
    type_sign_in,
    wrap_up_state,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def day(accounts: Accounts) -> Accounts:  # noqa: F811 (the imported fixture)
    """The test's API with an agent's and a supervisor's account (`accounts`, shared)."""
    return accounts


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def live_call(call_id: str, agent_id: str, started: datetime, monitors: list[dict[str, str]]) -> dict[str, object]:
    return {"call_id": call_id, "agent_id": agent_id, "lead_number": "+13055550142", "campaign_id": "camp-day",
            "state": "bridged", "started_at": iso(started), "connected": True, "monitors": monitors}


class FakeEvents:
    """The supervisor's event stream, played by the test: a snapshot with one live call, then what
    the test sends; while `down`, every connection is closed at once (the dialer is away)."""

    def __init__(self, agent_id: str, call_id: str) -> None:
        self.started = datetime.now(UTC) - timedelta(seconds=42)
        self.agent_id, self.call_id = agent_id, call_id
        self.open: list[WebSocketRoute] = []
        self.down = False

    def snapshot(self) -> str:
        agent = {"agent_id": self.agent_id, "state": "on_call", "since": iso(self.started), "call_id": self.call_id,
                 "campaign_ids": ["camp-day"], "pause_reason": None}
        return json.dumps({"type": "snapshot", "agents": [agent],
                           "calls": [live_call(self.call_id, self.agent_id, self.started, [])]})

    async def __call__(self, route: WebSocketRoute) -> None:
        if self.down:
            await route.close(code=1011, reason="the dialer is away")
            return
        self.open.append(route)
        route.send(self.snapshot())

    def send(self, message: dict[str, object]) -> None:
        for route in self.open:
            route.send(json.dumps(message))

    async def drop(self) -> None:
        self.down = True
        routes, self.open = self.open, []
        for route in routes:
            await route.close(code=1012, reason="the dialer restarts")


async def focused(page: Page) -> dict[str, str | None]:
    return await page.evaluate("""() => ({ mode: document.activeElement.dataset.mode || null,
      call: document.activeElement.closest('tr')?.dataset.callId || null })""")


async def test_the_supervisor_keeps_the_focus_and_is_told_when_the_lists_are_not_live(
        day: Accounts, page: Page) -> None:
    events = FakeEvents("agent-day", "call-day-1")
    await page.route_web_socket(re.compile(r"/v1/events"), events)
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    listen = page.locator("#calls tr[data-call-id='call-day-1'] button[data-mode='listen']")
    await listen.wait_for(timeout=10_000)

    # Tab to Listen: the list's times tick and the board reloads, and the focus stays there (the
    # rows were rebuilt every second, so the button went away under the keyboard and the mouse).
    await listen.focus()
    duration = page.locator("#calls tr[data-call-id='call-day-1'] td[data-started]")
    before = await duration.inner_text()
    await page.wait_for_timeout(3500)
    assert await focused(page) == {"mode": "listen", "call": "call-day-1"}
    assert await duration.inner_text() != before  # the duration ticks, in place
    # The call changes (a monitor joins): its row is drawn anew, and its button has the focus.
    events.send({"type": "calls", "calls": [live_call("call-day-1", "agent-day", events.started,
                                                      [{"endpoint": "sup9", "mode": "listen"}])]})
    await page.locator("#calls tr[data-call-id='call-day-1']").filter(has_text="sup9 listen").wait_for(timeout=5_000)
    assert await focused(page) == {"mode": "listen", "call": "call-day-1"}
    assert await page.locator("#wallboard-problem").is_hidden()

    # The dialer goes away (stream and API): the lists say they are not live, since when, and
    # listening in waits, instead of a call that may be over shown with its time counting on.
    await page.route("**/v1/wallboard", lambda route: route.abort())
    await page.route("**/v1/session", lambda route: route.abort())
    await events.drop()
    note = page.locator("#wallboard-problem")
    await note.filter(has_text="Not live since").wait_for(timeout=15_000)
    assert "the dialer does not answer" in await note.inner_text()
    assert re.search(r"\d\d:\d\d:\d\d [AP]M \w+", await note.inner_text())  # a time, in the supervisor's zone
    assert await listen.is_disabled()
    assert "stale" in (await page.locator("#calls").get_attribute("class") or "")
    frozen = await duration.inner_text()
    await page.wait_for_timeout(1500)
    assert await duration.inner_text() == frozen

    # Back: the note goes and Listen works again.
    await page.unroute("**/v1/wallboard")
    await page.unroute("**/v1/session")
    events.down = False
    await note.wait_for(state="hidden", timeout=20_000)
    assert await listen.is_enabled()
    assert "stale" not in (await page.locator("#calls").get_attribute("class") or "")


async def test_an_agent_logged_out_by_a_restart_is_told_in_words(day: Accounts, page: Page) -> None:
    api = day.api
    ready = json.dumps({"agent_id": api.agent_id, "state": "ready", "since": iso(datetime.now(UTC)),
                        "wrap_up_until": None, "version": 2, "campaign_ids": ["camp-a"]})
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json", body=ready))
    streams = Streams()
    await page.route_web_socket(re.compile(r"/events"), streams)
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#agent-state").filter(has_text="ready").wait_for(timeout=15_000)
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    assert await page.locator("#state-problem").inner_text() == ""

    # `dialer serve` restarts: the stream drops, and the dialer has no session for the agent now.
    await page.unroute("**/state")
    gone = json.dumps({"error": "not_logged_in", "message": f"agent {api.agent_id!r} is not logged in"})
    await page.route("**/state", lambda route: route.fulfill(status=404, content_type="application/problem+json",
                                                             body=gone))
    await streams.drop()
    await page.locator("#agent-state").filter(has_text="logged out").wait_for(timeout=15_000)
    await page.locator("#state-problem").filter(has_text="The dialer has logged you out").wait_for(timeout=5_000)
    assert "log in to your campaigns again" in await page.locator("#state-problem").inner_text()


async def test_an_older_state_answer_arriving_after_a_newer_stream_message_is_not_shown(
    day: Accounts, page: Page
) -> None:
    api = day.api

    def state(name: str, version: int) -> dict[str, object]:
        return {"type": "agent_state", "agent_id": api.agent_id, "state": name, "since": iso(datetime.now(UTC)),
                "version": version, "campaign_ids": ["camp-a"], "channel_id": "ags-older-answer", "call_id": None,
                "pause_reason": "lunch" if name == "paused" else None, "wrap_up_until": None, "logout_reason": None}

    first = json.dumps(state("ready", 2))
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json", body=first))
    streams: list[WebSocketRoute] = []

    def stream(route: WebSocketRoute) -> None:  # the test plays the agent's stream
        streams.append(route)

    await page.route_web_socket(re.compile(r"/events"), stream)
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#agent-state").filter(has_text="ready").wait_for(timeout=15_000)
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)

    # The stream drops; on reconnecting the page re-reads the state, and that answer (version 3,
    # ready) is slow: the stream's paused (version 4) comes first.
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_state(route: Route) -> None:
        asked.set()
        await release.wait()
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(state("ready", 3)))

    await page.unroute("**/state")
    await page.route("**/state", slow_state)
    dropped = streams.pop()
    await dropped.close(code=1012, reason="the dialer restarts")
    await asyncio.wait_for(asked.wait(), 15)
    streams[-1].send(json.dumps(state("paused", 4)))
    await page.locator("#agent-state").filter(has_text="paused").wait_for(timeout=15_000)
    async with page.expect_response("**/state"):
        release.set()
    await page.wait_for_timeout(500)  # the answer handled by the page (it is applied at once when newer)
    assert "paused" in await page.locator("#agent-state").inner_text()


async def test_a_slow_log_in_says_so_and_goes_once(day: Accounts, page: Page) -> None:
    api = day.api
    logins: list[str] = []
    answer = asyncio.Event()

    async def slow_login(route: Route) -> None:
        logins.append(route.request.url)
        await answer.wait()
        await route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "agent_id": api.agent_id, "state": "paused", "since": iso(datetime.now(UTC)), "version": 1,
            "pause_reason": "lunch", "campaign_ids": ["camp-a"]}))

    await page.route("**/login", slow_login)
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    campaigns = page.get_by_label("Campaigns")
    await campaigns.fill("camp-a")
    await campaigns.press("Enter")
    await page.locator("#state-working").filter(has_text="Logging in…").wait_for(timeout=5_000)
    assert await page.locator("#login-submit").is_disabled()
    await campaigns.press("Enter")  # impatient: nothing more is sent
    await page.locator("#login-submit").click(force=True)
    await page.wait_for_timeout(300)
    assert len(logins) == 1
    answer.set()
    await page.locator("#agent-state").filter(has_text="paused (lunch)").wait_for(timeout=10_000)
    assert await page.locator("#state-working").inner_text() == ""
    assert await page.locator("#state-problem").inner_text() == ""
    await status_line(page, "You are paused (lunch).")  # said to a screen reader too
    assert await page.get_by_role("button", name="Ready").is_enabled()


async def pop(day: Accounts, call_id: str) -> None:
    """The dialer's screen pop of `call_id` (the test's lead) to the agent's page."""
    api = day.api
    for _ in range(100):  # the page's stream is subscribed once "live" shows; a moment at most
        if day.hub.subscribers(api.agent_id):
            break
        await asyncio.sleep(0.05)
    day.hub.publish(api.agent_id, {
        "type": "screen_pop", "call_id": call_id, "campaign_id": None, "direction": "outbound",
        "lead": {"lead_id": api.lead_id, "name": "Dana", "phone": api.phone, "phones": [api.phone]}})


async def dispose_offline_then_next_call(day: Accounts, page: Page, notes: str, next_call_id: str) -> None:
    """The agent disposes a call while the network is down (the disposition is kept, "Offline"),
    and the next call pops before the network is back."""
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    await pop(day, day.api.call_id)
    await page.locator("#wrap").wait_for(timeout=10_000)
    await page.route("**/v1/calls/*/disposition", lambda route: route.abort())
    await page.get_by_label("Notes").fill(notes)
    await page.get_by_role("button", name="Contacted (Alt+1)").click()
    await page.locator("#dispo-result").filter(has_text="Offline").wait_for(timeout=10_000)
    await pop(day, next_call_id)
    await page.wait_for_function("() => window.consoleState.pops.length === 2", timeout=10_000)


async def test_a_disposition_sent_late_is_not_shown_under_the_next_call(day: Accounts, page: Page) -> None:
    api = day.api
    # Disposed with the network down (kept); the next call pops before the network is back,
    # then the first one's disposition goes.
    await dispose_offline_then_next_call(day, page, "Call her husband too", "call-next-of-the-day")
    assert await page.locator("#dispo-result").inner_text() == ""
    await page.unroute("**/v1/calls/*/disposition")
    await status_line(page, "Disposition saved: contacted")
    await page.wait_for_timeout(300)
    assert "Saved" not in await page.locator("#dispo-result").inner_text()  # the new call is not done
    assert await page.get_by_role("button", name="Contacted (Alt+1)").is_enabled()
    response = await api.client.get(f"/v1/calls/{api.call_id}/dispositions", headers=api.auth(api.crm))
    assert [(d["code"], d["notes"]) for d in (await response.json())["dispositions"]] == [
        ("contacted", "Call her husband too")]


async def test_another_agents_pending_disposition_stays_for_them(day: Accounts, page: Page) -> None:
    """A shared desk: the last shift's agent's disposition waits in this browser (their session
    ended); the next agent signing in here neither sends it (refused) nor drops it."""
    api = day.api
    theirs = {"callId": "call-of-the-last-shift", "key": "key-of-the-last-shift", "agentId": "agent-last-shift",
              "body": {"code": "sale", "notes": "Signed the application"}}
    await page.goto(day.url("/signin"))
    await page.evaluate("(item) => localStorage.setItem('dialer.pendingDispositions', JSON.stringify([item]))", theirs)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/disposition" in request.url else None)
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    await page.wait_for_timeout(500)
    assert sent == []
    kept = await page.evaluate("() => JSON.parse(localStorage.getItem('dialer.pendingDispositions'))")
    assert kept == [theirs]

    # The agent's own disposition is kept beside it while offline, and only its own is sent.
    await pop(day, api.call_id)
    await page.locator("#wrap").wait_for(timeout=10_000)
    await page.route("**/v1/calls/*/disposition", lambda route: route.abort())
    await page.get_by_role("button", name="Contacted (Alt+1)").click()
    await page.locator("#dispo-result").filter(has_text="Offline").wait_for(timeout=10_000)
    kept = await page.evaluate("() => JSON.parse(localStorage.getItem('dialer.pendingDispositions'))")
    assert [item["callId"] for item in kept] == ["call-of-the-last-shift", api.call_id]
    await page.unroute("**/v1/calls/*/disposition")
    await page.locator("#dispo-result").filter(has_text="Saved: contacted.").wait_for(timeout=10_000)
    kept = await page.evaluate("() => JSON.parse(localStorage.getItem('dialer.pendingDispositions'))")
    assert kept == [theirs]


async def test_the_console_open_in_two_tabs_says_so_in_both(day: Accounts, page: Page,
                                                            browser_context: BrowserContext) -> None:
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    assert await page.locator("#tabs-problem").is_hidden()
    second = await browser_context.new_page()
    await second.goto(day.url("/agent"))
    for tab in (page, second):
        await tab.locator("#tabs-problem").filter(has_text="also open in another tab").wait_for(timeout=10_000)
        assert await tab.get_by_role("alert").filter(has_text="close all but one").count() == 1
    await second.close()
    await page.locator("#tabs-problem").wait_for(state="hidden", timeout=10_000)


async def test_callback_times_name_the_agents_own_time_too(day: Accounts, browser: Browser) -> None:
    """The agent works in Chicago; the lead is in New York: each half-hour offered says both, and
    the saved callback says which it was."""
    api = day.api
    context = await browser.new_context(
        viewport={"width": 1280, "height": 720}, timezone_id="America/Chicago")
    try:
        page = await context.new_page()
        await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                 body=wrap_up_state(api)))
        times = json.dumps({"date": "2031-03-04", "zones": ["America/New_York"],
                            "times": ["2031-03-04T14:00:00Z", "2031-03-04T14:30:00Z"]})
        await page.route("**/callback-times*", lambda route: route.fulfill(
            status=200, content_type="application/json", body=times))
        sent: list[dict[str, object]] = []

        async def accept(route: Route) -> None:
            sent.append(json.loads(route.request.post_data or "{}"))
            await route.fulfill(status=202, content_type="application/json", body="{}")

        await page.route("**/v1/calls/*/disposition", accept)
        await sign_in_by_keyboard(page, day, day.agent, "/agent")
        await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
        options = page.locator("#callback-time option")
        await options.filter(has_text="09:00").wait_for(state="attached", timeout=10_000)
        assert await options.all_text_contents() == [
            "09:00 (America/New_York) = 08:00 CST your time", "09:30 (America/New_York) = 08:30 CST your time"]
        # The history's times name the zone they are in (the agent's own).
        await page.locator(f"#lead-calls tr[data-call-id='{api.call_id}']").wait_for(timeout=10_000)
        when = await page.locator(f"#lead-calls tr[data-call-id='{api.call_id}'] td").first.inner_text()
        assert re.search(r"\b(CST|CDT)\b", when)

        await page.get_by_label("at (lead's time)").select_option("2031-03-04T14:00:00Z")
        await page.get_by_role("button", name="Callback (Alt+3)").click()
        await page.locator("#dispo-result").filter(has_text="Saved: callback").wait_for(timeout=10_000)
        assert await page.locator("#dispo-result").inner_text() == (
            "Saved: callback Tue, Mar 4, 09:00 (America/New_York), Tue, Mar 4, 08:00 CST your time.")
        assert sent == [{"code": "callback", "callback_at": "2031-03-04T14:00:00Z"}]
    finally:
        await context.close()


async def test_a_failed_report_does_not_leave_older_figures_up(day: Accounts, page: Page) -> None:
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    await page.get_by_role("button", name="KPIs").click()
    await page.locator("#kpi-tiles [data-kpi='dials']").wait_for(timeout=15_000)

    problem = '{"error": "database_unavailable", "message": "the database does not answer; try again shortly"}'
    await page.route(re.compile(r"/v1/reports/(agency|agents|campaigns)\?(?!.*format=csv)"), lambda route: route.fulfill(
        status=503, content_type="application/problem+json", body=problem))
    await page.locator("#tab-kpis").get_by_label("Agent", exact=True).fill("agent-nobody")
    await page.get_by_role("button", name="Show").click()
    await page.locator("#kpi-problem").filter(
        has_text="The figures did not load: the database does not answer").wait_for(timeout=10_000)
    assert await page.locator("#kpi-tiles [data-kpi]").count() == 0
    assert await page.locator("#kpi-period-text").inner_text() == ""
    assert await page.locator("#kpi-agents tbody td[data-kpi]").count() == 0
    await page.locator("#kpi-agents tbody").filter(has_text="did not load").wait_for(timeout=5_000)


# The WCAG contrast ratio of a cell's text on its background (the first opaque one up the tree).
CONTRAST = """(node) => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92
    : ((v + 0.055) / 1.055) ** 2.4; }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let back = node, colour = null;
  while (back) { const c = rgb(getComputedStyle(back).backgroundColor); if (c.length < 4 || c[3] > 0)
    { colour = c; break; } back = back.parentElement; }
  colour = colour || [255, 255, 255];
  const [a, b] = [luminance(rgb(getComputedStyle(node).color)), luminance(colour)].sort((x, y) => y - x);
  return { ratio: (a + 0.05) / (b + 0.05), size: parseFloat(getComputedStyle(node).fontSize) };
}"""


async def test_the_wallboard_reads_from_across_the_room(day: Accounts, page: Page) -> None:
    events = FakeEvents("agent-wall", "call-wall-1")
    await page.route_web_socket(re.compile(r"/v1/events"), events)
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    await page.locator("#agents tr[data-agent-id='agent-wall']").wait_for(timeout=10_000)
    await page.get_by_label("Large text (wall screen)").check()
    for cell in ("#agents tr[data-agent-id='agent-wall'] td:nth-child(2)",
                 "#agents tr[data-agent-id='agent-wall'] td:nth-child(3)",
                 "#calls tr[data-call-id='call-wall-1'] td:nth-child(6)", "#agents th"):
        measured = await page.locator(cell).first.evaluate(CONTRAST)
        assert measured["size"] >= 24, (cell, measured)
        assert measured["ratio"] >= 4.5, (cell, measured)
    await page.reload()  # the wall's browser keeps it
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    assert await page.evaluate("() => document.body.classList.contains('wall')")
    assert await page.evaluate(OVERFLOW) == {"scroll": 0, "wide": []}


# Every control a person may use, as the page shows it on a call.
ENABLED_CONTROLS = """() => [...document.querySelectorAll('button, input, select, textarea, summary, a[href]')]
  .filter((node) => !node.disabled && node.checkVisibility({ visibilityProperty: true }))
  .map((node) => node.id || node.dataset.code || node.dataset.digit || node.textContent.trim())"""
FOCUS_SHOWN = """() => { const node = document.activeElement, style = getComputedStyle(node);
  return { name: node.id || node.dataset.code || node.textContent.trim(),
           shown: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 }; }"""


@pytest.mark.parametrize("width,height", [(1280, 720), (420, 800)])
async def test_every_control_on_a_call_is_reached_by_tab_with_its_focus_shown(
        day: Accounts, page: Page, width: int, height: int) -> None:
    api = day.api
    await page.set_viewport_size({"width": width, "height": height})
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=wrap_up_state(api)))
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    await page.locator(f"#lead-calls tr[data-call-id='{api.call_id}']").wait_for(timeout=10_000)
    await page.locator("#callback-time option").first.wait_for(state="attached", timeout=10_000)
    wanted = set(await page.evaluate(ENABLED_CONTROLS))
    reached: dict[str, bool] = {}
    await page.locator("#shell-sign-out").focus()
    for _ in range(len(wanted) + 20):
        await page.keyboard.press("Tab")
        seen = await page.evaluate(FOCUS_SHOWN)
        reached.setdefault(seen["name"], seen["shown"])
    assert wanted - set(reached) == set()
    assert [name for name, shown in reached.items() if not shown and name in wanted] == []
    # A narrow window: one column, nothing sticking out sideways.
    assert await page.evaluate(OVERFLOW) == {"scroll": 0, "wide": []}
    assert await page.evaluate(NAMES) == {"unnamed": [], "shared": []}  # each control says what it is for
    # Hot keys reach the disposition without the mouse.
    await page.keyboard.press("Alt+1")
    await page.locator("#dispo-result").filter(has_text="Saved: contacted.").wait_for(timeout=10_000)


async def test_the_sign_in_page_says_why_when_a_session_ended_mid_shift(day: Accounts, page: Page,
                                                                        browser_context: BrowserContext) -> None:
    sign_ins: list[str] = []
    page.on("request", lambda request: sign_ins.append(request.method) if request.url.endswith("/v1/sessions")
            else None)
    slow = asyncio.Event()

    async def slow_sign_in(route: Route) -> None:
        await slow.wait()
        await route.continue_()

    await page.route("**/v1/sessions", slow_sign_in)
    await page.goto(day.url("/agent"))
    await page.wait_for_url(re.compile(r"/signin\?next="))
    assert await page.locator("#ended").is_hidden()  # a first visit: nothing ended
    await page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=10_000)
    await page.get_by_label("User name").fill(day.agent)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.get_by_role("button", name="Signing in…").wait_for(timeout=5_000)  # a slow server: said
    await page.get_by_label("Password").press("Enter")  # impatient: once is enough
    await page.wait_for_timeout(300)
    slow.set()
    await page.wait_for_url(re.compile(r"^https?://[^/?]+/agent$"), wait_until="commit", timeout=15_000)
    assert sign_ins == ["POST"]
    await page.unroute("**/v1/sessions")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)

    # Signed out in another tab mid-shift: this page goes to sign in, which says why and what is kept.
    other = await browser_context.new_page()
    await other.goto(day.url("/agent"))
    await other.get_by_role("button", name="Sign out", exact=True).click()
    await other.wait_for_url("**/signin", wait_until="commit")
    assert await other.locator("#ended").is_hidden()  # the one who signed out knows why
    await other.close()
    await page.get_by_role("button", name="Search").click()  # the agent works on: the API answers 401
    await page.get_by_label("Name, phone or e-mail").fill("Dana")
    await page.get_by_label("Name, phone or e-mail").press("Enter")
    await page.wait_for_url(re.compile(r"/signin\?next="), timeout=15_000)
    await page.locator("#ended").filter(has_text="Your session ended").wait_for(timeout=5_000)
    assert "are kept" in await page.locator("#ended").inner_text()
    await type_sign_in(page, day.agent, "/agent")


async def test_a_wallboard_that_never_loaded_does_not_say_no_calls(day: Accounts, page: Page) -> None:
    """Opened while the dialer is away: the lists say they are not known, not "No live calls."."""
    events = FakeEvents("agent-away", "call-away-1")
    events.down = True
    await page.route_web_socket(re.compile(r"/v1/events"), events)
    await page.route("**/v1/wallboard", lambda route: route.abort())
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.locator("#wallboard-problem").filter(has_text="Not live since").wait_for(timeout=15_000)
    for table in ("calls", "agents"):
        await page.locator(f"#{table} tbody tr.empty").filter(has_text="Not known: the dialer has not answered").wait_for(
            timeout=5_000)
    assert "No live calls" not in await page.locator("#calls").inner_text()
    await page.unroute("**/v1/wallboard")
    events.down = False
    await page.locator("#calls tr[data-call-id='call-away-1']").wait_for(timeout=20_000)
    await page.locator("#wallboard-problem").wait_for(state="hidden", timeout=10_000)


async def test_a_session_about_to_end_says_when_in_the_persons_own_time(day: Accounts, page: Page) -> None:
    ends = datetime.now(UTC) + timedelta(minutes=10, seconds=30)

    async def ending_soon(route: Route) -> None:
        if route.request.method != "GET":
            await route.continue_()
            return
        answer = await route.fetch()
        body = await answer.json()
        if "expires_at" in body:
            body["expires_at"] = iso(ends)
        await route.fulfill(response=answer, json=body)

    await page.route("**/v1/session", ending_soon)
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    note = page.locator("#shell-expiry")
    await note.filter(has_text="Your session ends at").wait_for(timeout=15_000)
    words = await note.inner_text()
    assert "(in 11 minutes)" in words
    assert re.search(r"ends at \d{1,2}:\d\d [AP]M UTC", words)  # the browser's own zone (UTC here), named
    assert await page.get_by_role("alert").filter(has_text="Your session ends").count() == 1


async def test_monitoring_without_a_phone_says_so_and_asks_once(day: Accounts, page: Page) -> None:
    events = FakeEvents("agent-mon", "call-mon-1")
    await page.route_web_socket(re.compile(r"/v1/events"), events)
    asked: list[str] = []
    slow = asyncio.Event()

    async def slow_phone(route: Route) -> None:
        asked.append(route.request.url)
        await slow.wait()
        await route.continue_()

    await page.route("**/v1/session/supervisor-phone", slow_phone)
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    listen = page.locator("#calls tr[data-call-id='call-mon-1'] button[data-mode='listen']")
    await listen.click()
    await status_line(page, "Connecting your browser phone for monitoring")
    await page.locator("#calls tr[data-call-id='call-mon-1'] button[data-mode='barge']").click()
    await status_line(page, "the last request is still on its way")
    slow.set()
    # This API hands out no phones (no Asterisk): said, in the API's words, and nothing was asked twice.
    await status_line(page, "Monitoring needs your browser phone: ")
    assert len(asked) == 1


@pytest.mark.parametrize("width", [1280, 640])
async def test_the_supervisor_console_fits_a_narrow_window(day: Accounts, page: Page, width: int) -> None:
    """Half a laptop's screen: nothing sticks out sideways; a wide table scrolls in its own box."""
    events = FakeEvents("agent-narrow-with-a-long-name", "call-narrow-1")
    await page.route_web_socket(re.compile(r"/v1/events"), events)
    await page.set_viewport_size({"width": width, "height": 720})
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    await page.locator("#calls tr[data-call-id='call-narrow-1']").wait_for(timeout=10_000)
    assert await page.evaluate(OVERFLOW_OUTSIDE_SCROLLERS) == {"scroll": 0, "wide": []}
    for tab in ("KPIs", "Pipeline", "Recordings"):
        await page.get_by_role("button", name=tab, exact=True).click()
        await page.wait_for_timeout(500)
        assert await page.evaluate(OVERFLOW_OUTSIDE_SCROLLERS) == {"scroll": 0, "wide": []}, tab


# As OVERFLOW, but what is inside a box that scrolls sideways by itself (a wide table's) is in.
OVERFLOW_OUTSIDE_SCROLLERS = """() => {
  const scrolls = (node) => { for (let up = node.parentElement; up; up = up.parentElement) {
    const style = getComputedStyle(up); if (['auto', 'scroll'].includes(style.overflowX)) return true; } return false; };
  const wide = [...document.querySelectorAll('body *')].filter((node) => node.getBoundingClientRect().right
    > document.documentElement.clientWidth + 1 && node.getClientRects().length && !scrolls(node));
  return { scroll: document.documentElement.scrollWidth - document.documentElement.clientWidth,
           wide: wide.map((node) => node.id || node.className || node.tagName).slice(0, 5) };
}"""


async def test_a_call_fits_a_laptop_at_125_percent(day: Accounts, page: Page) -> None:
    """1366x768 at Windows' default 125 % scaling is 1093x614 CSS pixels: the call, its pop and its
    disposition are all in view, as at 1280x720."""
    api = day.api
    await page.set_viewport_size({"width": 1093, "height": 614})
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=wrap_up_state(api)))
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    await page.locator("#callback-time option").first.wait_for(state="attached", timeout=10_000)
    assert await page.evaluate(OUTSIDE_THE_WINDOW, list(NEEDED_ON_A_CALL)) == {"outside": [], "scroll": 0}


async def test_a_slow_search_says_it_is_searching_and_how_many_it_found(day: Accounts, page: Page) -> None:
    slow = asyncio.Event()

    async def slow_search(route: Route) -> None:
        await slow.wait()
        await route.continue_()

    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    await page.route(re.compile(r"/v1/leads\?"), slow_search)
    await page.get_by_label("Name, phone or e-mail").fill(day.api.phone)
    await page.get_by_label("Name, phone or e-mail").press("Enter")
    await page.locator("#search-results").filter(has_text="Searching…").wait_for(timeout=5_000)
    slow.set()
    await page.get_by_role("button", name=re.compile(r"^Open ")).wait_for(timeout=10_000)
    await status_line(page, "1 lead found.")


async def test_recording_times_name_the_supervisors_zone(day: Accounts, page: Page) -> None:
    found = json.dumps({"recordings": [{"recording_id": "rec-day-1", "recorded_at": "2031-03-04T14:00:00Z",
                                        "call_id": "call-day-9", "lead_id": "lead-day-9", "duration_seconds": 95,
                                        "audio_url": "/v1/recordings/rec-day-1/audio"}], "next": None})
    await page.route(re.compile(r"/v1/recordings\?"), lambda route: route.fulfill(
        status=200, content_type="application/json", body=found))
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    await page.get_by_role("button", name="Recordings", exact=True).click()
    await page.locator("#rec-form").get_by_role("button", name="Search").click()
    cell = page.locator("#recordings tr[data-recording-id='rec-day-1'] td").first
    await cell.wait_for(timeout=10_000)
    assert await cell.inner_text() == "Mar 4, 2031, 2:00 PM UTC"  # the browser's zone here: UTC, named


async def test_a_previous_calls_disposition_refused_later_stays_in_view_with_its_notes(
        day: Accounts, page: Page) -> None:
    await dispose_offline_then_next_call(day, page, "Prefers mornings; diabetic, ask about riders",
                                         "call-after-the-outage")

    refused = json.dumps({"error": "callback_outside_window", "message": "the callback time is no longer allowed"})
    await page.unroute("**/v1/calls/*/disposition")
    await page.route("**/v1/calls/*/disposition", lambda route: route.fulfill(
        status=409, content_type="application/problem+json", body=refused))
    box = page.locator("#earlier-problem")
    await box.filter(has_text="was not saved: the callback time is no longer allowed").wait_for(timeout=10_000)
    assert "Prefers mornings; diabetic, ask about riders" in await box.inner_text()
    assert "Not saved" not in await page.locator("#dispo-result").inner_text()  # not under the new call
    await page.wait_for_timeout(2500)
    assert await box.is_visible()  # it stays until the agent has read it
    await box.get_by_role("button", name="Dismiss").click()
    assert await box.is_hidden()


async def test_the_phone_check_says_what_its_state_means_and_offers_only_what_works(
        page: Page, static_server: StaticServer) -> None:
    await page.goto(static_server.url("phone-check.html"))
    for button in ("Answer", "Hang up", "Mute", "Hold"):
        assert await page.get_by_role("button", name=button).is_disabled()
    # Nothing listens there: the phone cannot connect, and the page says what that means.
    await page.get_by_label("WebSocket").fill(f"ws://127.0.0.1:{free_local_port()}/ws")
    await page.get_by_label("SIP address").fill("sip:agent1099-web@127.0.0.1")
    await page.get_by_label("Username").fill("agent1099-web")
    await page.get_by_label("Password").fill("not a real one")
    await page.get_by_role("button", name="Connect").click()
    await page.locator("#registration").filter(has_text="reconnecting: the connection dropped").wait_for(
        timeout=15_000)
    assert await page.get_by_role("button", name="Answer").is_disabled()
    await page.evaluate("() => window.phone.stop()")


async def test_a_reload_while_a_disposition_waits_offline_does_not_offer_a_second_one(
        day: Accounts, page: Page) -> None:
    api = day.api
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=wrap_up_state(api)))
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    await page.route("**/v1/calls/*/disposition", lambda route: route.abort())
    await page.get_by_role("button", name="Not interested (Alt+4)").click()
    await page.locator("#dispo-result").filter(has_text="Offline").wait_for(timeout=10_000)

    await page.reload()  # still offline for dispositions: the call is shown again, its choice kept
    await page.locator("#dispo-result").filter(has_text="Not sent yet: not interested is kept").wait_for(
        timeout=15_000)
    await page.wait_for_timeout(1000)  # the campaign's codes are asked again: still waiting
    assert await page.get_by_role("button", name="Contacted (Alt+1)").is_disabled()
    await page.unroute("**/v1/calls/*/disposition")
    await page.locator("#dispo-result").filter(has_text="Saved: not interested.").wait_for(timeout=10_000)
    response = await api.client.get(f"/v1/calls/{api.call_id}/dispositions", headers=api.auth(api.crm))
    assert [d["code"] for d in (await response.json())["dispositions"]] == ["not_interested"]


def board_with(dials: int) -> str:
    """A wallboard answer with one running campaign that has made `dials` dials today."""
    campaign = {"campaign_id": "camp-focus", "name": "Medicare supplements", "running": True, "paused": False,
                "dial_mode": "progressive", "pacer": "progressive", "lines": 3, "hopper": 40,
                "today": {"dials": dials, "answered": 3, "people": 1, "connected": 1, "abandoned": 0},
                "abandon_30_days": {"rate": 0.0, "limit": 0.03, "live_answers": 1},
                "leads_left": {"due": 10, "scheduled": 2, "callback": 1, "done": 5}, "blocked": {}}
    return json.dumps({"alerts": [], "waiting": [], "campaigns": [campaign], "calls": [], "agents": []})


async def test_a_campaigns_pause_button_keeps_the_focus_while_its_figures_refresh(day: Accounts, page: Page) -> None:
    dials = [7]
    await page.route("**/v1/wallboard", lambda route: route.fulfill(
        status=200, content_type="application/json", body=board_with(dials[0])))
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    pause = page.locator("#campaigns tr[data-campaign-id='camp-focus'] button")
    await pause.focus()
    await page.wait_for_timeout(3500)  # a refresh with the same figures: the row is the same
    assert await page.evaluate("() => document.activeElement.textContent") == "Pause"
    dials[0] = 8  # the next refresh brings new figures: the row is new, and its button has the focus
    await page.locator("#campaigns tr[data-campaign-id='camp-focus']").filter(has_text="8").wait_for(timeout=10_000)
    assert await page.evaluate(
        "() => [document.activeElement.textContent, document.activeElement.closest('tr')?.dataset.campaignId]"
    ) == ["Pause", "camp-focus"]


async def test_the_campaigns_table_tells_people_from_answered_lines(day: Accounts, page: Page) -> None:
    # "Answered" counts answering machines too (3 lines answered, 1 of them by a person): the
    # demo's console showed 45 answered against 28 people, with nothing to tell them apart.
    await page.route("**/v1/wallboard", lambda route: route.fulfill(
        status=200, content_type="application/json", body=board_with(7)))
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    row = page.locator("#campaigns tr[data-campaign-id='camp-focus']")
    await row.wait_for(timeout=15_000)
    figures = dict(zip(await page.locator("#campaigns thead th").all_inner_texts(),
                       await row.locator("td").all_inner_texts(), strict=True))
    assert (figures["Dials"], figures["Answered"], figures["People"], figures["Connected"]) == ("7", "3", "1", "1")
    assert "answering machine" in (await page.locator("#campaigns thead th", has_text="Answered").get_attribute(
        "title") or "")


# Every control's accessible name as a screen reader says it (its label, aria-label or text), and
# the names more than one control shares: "CSV", five times over, said nothing of which table.
NAMES = """() => {
  const name = (node) => (node.getAttribute('aria-label') || (node.labels && node.labels[0]?.textContent)
    || node.getAttribute('title') || node.textContent || '').trim();
  const controls = [...document.querySelectorAll('button, input, select, textarea, a[href]')]
    .filter((node) => node.type !== 'hidden' && node.checkVisibility());
  const names = controls.map(name);
  return { unnamed: controls.filter((node, i) => !names[i]).map((node) => node.id || node.outerHTML.slice(0, 60)),
           shared: [...new Set(names.filter((n, i) => names.indexOf(n) !== i))] };
}"""


async def test_every_supervisor_control_has_a_name_of_its_own(day: Accounts, page: Page) -> None:
    events = FakeEvents("agent-names", "call-names-1")
    await page.route_web_socket(re.compile(r"/v1/events"), events)
    await page.route("**/v1/wallboard", lambda route: route.fulfill(
        status=200, content_type="application/json", body=board_with(3)))
    await sign_in_by_keyboard(page, day, day.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    await page.locator("#calls tr[data-call-id='call-names-1']").wait_for(timeout=10_000)
    for tab in ("Wallboard", "KPIs", "Pipeline", "Recordings"):  # what each tab shows
        await page.get_by_role("button", name=tab, exact=True).click()
        assert await page.evaluate(NAMES) == {"unnamed": [], "shared": []}, tab


async def test_a_computer_going_offline_is_said_at_once_and_the_stream_comes_back(
        day: Accounts, page: Page, browser_context: BrowserContext) -> None:
    api = day.api
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=wrap_up_state(api)))
    await sign_in_by_keyboard(page, day, day.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    await page.get_by_label("Notes").fill("Asked about dental cover")
    await browser_context.set_offline(True)
    await status_line(page, "This computer lost its network")
    await page.locator("#stream").filter(has_text="reconnecting").wait_for(timeout=5_000)
    await page.wait_for_timeout(6000)  # a while offline: the attempts wait
    await browser_context.set_offline(False)
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=3_000)  # at once, not after 5 s
    await status_line(page, "Reconnected to the dialer")
    assert await page.get_by_label("Notes").input_value() == "Asked about dental cover"
