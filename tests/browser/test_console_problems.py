"""The consoles when things go wrong or are empty, in a real Chromium against the API (real
PostgreSQL and Redis; no Asterisk: the page's phone is refused, which the page says): the event
stream dropping and coming back, the session ending in another tab, a failing API call, empty
tables, a wrong password, sign-in by keyboard, and a lead whose name is long and not ASCII at
1280x720 and 1366x768."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, Route, WebSocketRoute

from dialer.runtime.agent_events import AgentEventHub
from dialer.web.users import UserRole, UserStore
from tests.api.conftest import Api, open_api

pytestmark = pytest.mark.timeout(120)
PASSWORD = "first day password"
# A name a CRM may well hold: accents, CJK, an emoji, and one unbroken 60-letter word.
LONG_NAME = "Zoë-Éléonore 李小龍 🌻 " + "Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaft"

# Whether anything sticks out sideways: horizontal scrolling, or boxes past the window's edge.
OVERFLOW = """() => {
  const wide = [...document.querySelectorAll('body *')].filter((node) => node.getBoundingClientRect().right
    > document.documentElement.clientWidth + 1 && node.getClientRects().length);
  return { scroll: document.documentElement.scrollWidth - document.documentElement.clientWidth,
           wide: wide.map((node) => node.id || node.className || node.tagName).slice(0, 5) };
}"""


class Accounts:
    def __init__(self, api: Api, hub: AgentEventHub, agent: str, supervisor: str) -> None:
        self.api, self.hub, self.agent, self.supervisor = api, hub, agent, supervisor

    def url(self, path: str) -> str:
        return str(self.api.client.make_url(path))


@pytest.fixture
async def accounts(pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Accounts]:
    hub = AgentEventHub()  # the test sends the agent's page its screen pops
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state", hub=hub) as api:
        users = UserStore(api.store)
        suffix = api.agent_id.rpartition("-")[2]
        agent, supervisor = f"newagent{suffix}", f"newsup{suffix}"
        await users.create(agent, UserRole.AGENT, PASSWORD, agent_id=api.agent_id)
        await users.create(supervisor, UserRole.SUPERVISOR, PASSWORD)
        yield Accounts(api, hub, agent, supervisor)


async def sign_in_by_keyboard(page: Page, accounts: Accounts, username: str, console: str) -> None:
    """Open the console, get sent to sign in, and sign in with the keyboard only (Tab, Enter)."""
    await page.goto(accounts.url(console))
    await page.wait_for_url(re.compile(rf"/signin\?next={console}$"))
    await type_sign_in(page, username, console)


async def type_sign_in(page: Page, username: str, console: str) -> None:
    """On the sign-in page: the user name, Tab, the password, Enter; then wait for the console."""
    # The field takes the focus by `autofocus`, applied at a rendering update after the page
    # loaded: keys typed before it would go nowhere.
    await page.wait_for_function("() => document.activeElement && document.activeElement.id === 'username'",
                                 timeout=10_000)
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    # The console's own path: "**/agent" would also match the sign-in page's "?next=/agent".
    await page.wait_for_url(re.compile(rf"^https?://[^/?]+{console}$"), wait_until="commit", timeout=15_000)


class Streams:
    """Every event stream the page opens passes through here, so the test can drop them."""

    def __init__(self) -> None:
        self.open: list[WebSocketRoute] = []

    def __call__(self, route: WebSocketRoute) -> None:
        route.connect_to_server()
        self.open.append(route)

    async def drop(self) -> None:
        routes, self.open = self.open, []
        for route in routes:
            await route.close(code=1012, reason="the dialer restarts")


async def status_line(page: Page, words: str) -> None:
    await page.locator("#shell-status").filter(has_text=words).wait_for(timeout=15_000)


async def test_wrong_password_says_so_and_keeps_the_user_name(accounts: Accounts, page: Page) -> None:
    await page.goto(accounts.url("/agent"))
    await page.get_by_label("User name").fill(accounts.agent)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_label("Password").press("Enter")
    await page.locator("#problem").filter(has_text="The user name or password is wrong.").wait_for(timeout=10_000)
    assert await page.get_by_label("User name").input_value() == accounts.agent
    assert await page.evaluate("document.activeElement.id") == "password"


async def test_the_agent_page_says_when_its_events_drop_and_come_back(accounts: Accounts, page: Page) -> None:
    streams = Streams()
    await page.route_web_socket(re.compile(r"/events"), streams)
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    # Without Asterisk this API hands out no phone: the page says why, in the API's words.
    await page.locator("#phone-problem").filter(has_text="without the phones' credentials").wait_for(timeout=10_000)

    state_reads: list[str] = []
    page.on("request", lambda request: state_reads.append(request.url) if request.url.endswith("/state") else None)
    await streams.drop()  # as when `dialer serve` restarts
    await page.locator("#stream").filter(has_text="reconnecting").wait_for(timeout=5_000)
    await status_line(page, "Lost the connection to the dialer: reconnecting")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    await status_line(page, "Reconnected to the dialer")
    # The agent's stream does not resend the state: the page reads what changed meanwhile.
    await page.wait_for_timeout(500)
    assert state_reads == [accounts.url(f"/v1/agents/{accounts.api.agent_id}/state")]


async def test_a_page_whose_session_ended_in_another_tab_goes_to_sign_in(accounts: Accounts, page: Page,
                                                                         browser_context: BrowserContext) -> None:
    streams = Streams()
    await page.route_web_socket(re.compile(r"/events"), streams)
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)

    other = await browser_context.new_page()
    await other.goto(accounts.url("/agent"))
    await other.get_by_role("button", name="Sign out", exact=True).click()
    await other.wait_for_url("**/signin", wait_until="commit")

    # The idle page learns it when its stream next drops, instead of "reconnecting" forever.
    await streams.drop()
    await page.wait_for_url(re.compile(r"/signin\?next=(/|%2F)agent$"), timeout=15_000)


async def test_empty_tables_say_so_and_a_failed_call_is_said_in_words(accounts: Accounts, page: Page) -> None:
    await sign_in_by_keyboard(page, accounts, accounts.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    for table, words in (("calls", "No live calls."), ("waiting", "No call waiting."),
                         ("agents", "No agent is logged in.")):
        await page.locator(f"#{table} tbody tr.empty").filter(has_text=words).wait_for(timeout=10_000)

    # The header's "phone: off" was white on a light pill: unreadable.
    assert await page.locator("#phone-state").evaluate("(node) => getComputedStyle(node).color") != "rgb(255, 255, 255)"
    await page.get_by_role("button", name="KPIs").click()
    await page.locator("#kpi-chart canvas").wait_for(timeout=15_000)
    assert await page.evaluate(OVERFLOW) == {"scroll": 0, "wide": []}
    await page.get_by_role("button", name="Wallboard").click()

    problem = '{"error": "database_unavailable", "message": "the database does not answer; try again shortly"}'
    await page.route("**/v1/reports/pipeline*", lambda route: route.fulfill(
        status=503, content_type="application/problem+json", body=problem))
    await page.get_by_role("button", name="Pipeline").click()
    await status_line(page, "The pipeline did not load: the database does not answer; try again shortly")
    assert "database_unavailable" not in (await page.locator("body").inner_text())


@pytest.mark.parametrize("width,height", [(1280, 720), (1366, 768)])
async def test_a_long_unicode_lead_fits_the_agent_page(accounts: Accounts, page: Page, width: int,
                                                       height: int) -> None:
    api = accounts.api
    await api.outbox.put_many([("lead_upsert", {"lead_id": api.lead_id, "first_name": LONG_NAME,
                                                "last_name": "Dana", "phones": [api.phone], "state": "NY"})])
    assert await api.outbox.flush(10)
    await page.set_viewport_size({"width": width, "height": height})
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)  # the page's script runs

    # Enter submits the search; an empty one says what to type.
    await page.get_by_role("button", name="Search").click()
    await page.locator("#search-results").filter(has_text="Type a name").wait_for(timeout=5_000)
    await page.get_by_label("Name, phone or e-mail").fill("Nobody Zzyzx")
    await page.get_by_label("Name, phone or e-mail").press("Enter")
    await page.locator("#search-results").filter(has_text="No lead of yours matches.").wait_for(timeout=10_000)
    await page.get_by_label("Name, phone or e-mail").fill(api.phone)
    await page.get_by_label("Name, phone or e-mail").press("Enter")
    open_button = page.get_by_role("button", name=re.compile(r"^Open Zoë"))
    box = await open_button.bounding_box()
    assert box is not None and box["height"] < 40  # one line, not squeezed to a letter a line
    await open_button.click()
    await page.locator("#lead-name").filter(has_text="李小龍 🌻").wait_for(timeout=10_000)
    await page.locator(f"#lead-calls tr[data-call-id='{api.call_id}']").wait_for(timeout=10_000)  # its one call

    # Nothing sticks out sideways: no horizontal scrolling, every box inside the window.
    assert await page.evaluate(OVERFLOW) == {"scroll": 0, "wide": []}


async def test_a_disposition_refused_because_the_session_ended_is_sent_after_signing_in_again(
        accounts: Accounts, page: Page) -> None:
    api = accounts.api
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    for _ in range(100):  # the page's stream is subscribed once "live" shows; a moment at most
        if accounts.hub.subscribers(api.agent_id):
            break
        await asyncio.sleep(0.05)
    accounts.hub.publish(api.agent_id, {
        "type": "screen_pop", "call_id": api.call_id, "campaign_id": None, "direction": "outbound",
        "lead": {"lead_id": api.lead_id, "name": "Dana", "phone": api.phone, "phones": [api.phone]}})
    await page.locator("#wrap").wait_for(timeout=10_000)

    # The session expires (or is signed out in another tab) just as the agent clicks: the API
    # answers the disposition 401, as it does then.
    ended = '{"error": "unauthorized", "message": "the session has ended: sign in again"}'
    await page.route("**/disposition", lambda route: route.fulfill(
        status=401, content_type="application/problem+json", body=ended), times=1)
    await page.get_by_label("Notes").fill("Wants a quote for two; call after 5")
    await page.get_by_role("button", name="Contacted (Alt+1)").click()
    await page.wait_for_url(re.compile(r"/signin\?next="), timeout=10_000)
    await type_sign_in(page, accounts.agent, "/agent")

    for _ in range(100):  # the page sends what it kept as it starts
        response = await api.client.get(f"/v1/calls/{api.call_id}/dispositions", headers=api.auth(api.crm))
        saved = (await response.json())["dispositions"]
        if saved:
            break
        await asyncio.sleep(0.1)
    assert [(d["code"], d["notes"]) for d in saved] == [("contacted", "Wants a quote for two; call after 5")]


async def test_an_agent_types_the_campaigns_once(accounts: Accounts, page: Page) -> None:
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    campaigns = page.get_by_label("Campaigns")
    assert await campaigns.input_value() == ""
    # No list to pick from (no campaigns' runtime here): the page says so, and ids may be typed.
    await page.locator("#campaign-note").filter(has_text="The list of campaigns did not load").wait_for(timeout=10_000)
    # Refused (this API runs without the campaigns' runtime): said in words, and not kept.
    await campaigns.fill("camp-refused")
    await campaigns.press("Enter")
    await page.locator("#state-problem").filter(has_text="runs without").wait_for(timeout=10_000)
    await page.reload()
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    assert await campaigns.input_value() == ""

    state = json.dumps({"agent_id": accounts.api.agent_id, "state": "logging_in", "since": "2026-01-05T14:00:00Z",
                        "version": 1, "campaign_ids": ["camp-a", "camp-b"]})
    await page.route("**/login", lambda route: route.fulfill(status=200, content_type="application/json", body=state))
    await campaigns.fill(" camp-a ,camp-b")
    await campaigns.press("Enter")
    await page.locator("#agent-state").filter(has_text="logging in").wait_for(timeout=10_000)
    await page.reload()
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    assert await campaigns.input_value() == "camp-a, camp-b"


async def test_a_reload_in_wrap_up_shows_the_call_again_to_disposition_it(accounts: Accounts, page: Page) -> None:
    api = accounts.api
    # This API runs without the campaigns' runtime: the agent's state is answered here.
    state = json.dumps({"agent_id": api.agent_id, "state": "wrap_up", "since": "2026-01-05T14:00:00Z",
                        "wrap_up_until": None, "call_id": api.call_id, "version": 3, "campaign_ids": []})
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json", body=state))
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    await status_line(page, "Your current call is shown again.")
    await page.get_by_role("button", name="Contacted (Alt+1)").click()
    await page.locator("#dispo-result").filter(has_text="Saved: contacted.").wait_for(timeout=10_000)

    await page.reload()  # once more: the call is shown, its disposition already stored
    await page.locator("#dispo-result").filter(has_text="Saved: contacted.").wait_for(timeout=15_000)
    assert await page.get_by_role("button", name="Contacted (Alt+1)").is_disabled()
    response = await api.client.get(f"/v1/calls/{api.call_id}/dispositions", headers=api.auth(api.crm))
    assert [d["code"] for d in (await response.json())["dispositions"]] == ["contacted"]


async def test_an_empty_list_of_campaigns_says_so(accounts: Accounts, page: Page) -> None:
    none = json.dumps({"campaigns": [], "next": None})
    await page.route(re.compile(r"/v1/agents/[^/]+/campaigns$"), lambda route: route.fulfill(
        status=200, content_type="application/json", body=none))
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#campaign-note").filter(
        has_text="No campaign is open for you to log in to: ask your supervisor.").wait_for(timeout=10_000)
    assert await page.locator("#campaign-pick option").all_text_contents() == ["Add a campaign…"]


async def test_an_agent_whose_dialer_session_ended_is_shown_logged_out(accounts: Accounts, page: Page) -> None:
    """The dialer answers 404 `not_logged_in` to pausing an agent that has no session any more
    (logged out by a supervisor, its phone hung up, a restart): the page shows the agent logged
    out, ready to log in again, instead of an error and a stale state."""
    api = accounts.api
    ready = json.dumps({"agent_id": api.agent_id, "state": "ready", "since": "2026-01-05T14:00:00Z",
                        "wrap_up_until": None, "version": 2, "campaign_ids": ["camp-a"]})
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json", body=ready))
    gone = json.dumps({"error": "not_logged_in", "message": f"agent {api.agent_id!r} is not logged in"})
    await page.route("**/pause", lambda route: route.fulfill(status=404, content_type="application/problem+json",
                                                             body=gone))
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#agent-state").filter(has_text="ready").wait_for(timeout=15_000)
    await page.get_by_role("button", name="Pause", exact=True).click()
    await page.locator("#agent-state").filter(has_text="logged out").wait_for(timeout=10_000)
    await page.locator("#state-problem").filter(has_text="You are not logged in to the dialer any more").wait_for(
        timeout=5_000)
    assert await page.evaluate("document.activeElement.id") == "campaigns"
    assert await page.get_by_role("button", name="Pause", exact=True).is_disabled()


def wrap_up_state(api: Api) -> str:
    """The agent's state in wrap-up of the test's call (this API runs without the campaigns'
    runtime, so the page's `GET .../state` is answered with it): the page shows the call again."""
    return json.dumps({"agent_id": api.agent_id, "state": "wrap_up", "since": "2026-01-05T14:00:00Z",
                       "wrap_up_until": None, "call_id": api.call_id, "version": 3, "campaign_ids": []})


async def test_unsent_notes_survive_a_reload_and_signing_in_again_and_go_once_sent(
        accounts: Accounts, page: Page, browser_context: BrowserContext) -> None:
    api = accounts.api
    notes_typed = "Spouse joins at 6; wants two Medigap quotes"
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=wrap_up_state(api)))
    streams = Streams()
    await page.route_web_socket(re.compile(r"/events"), streams)
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    notes = page.get_by_label("Notes")
    await notes.fill(notes_typed)

    await page.reload()  # the notes were never sent: they are shown again with their call
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    assert await notes.input_value() == notes_typed

    # Signed out in another tab: this page goes to sign in when its stream drops, and back.
    other = await browser_context.new_page()
    await other.goto(accounts.url("/agent"))
    await other.get_by_role("button", name="Sign out", exact=True).click()
    await other.wait_for_url("**/signin", wait_until="commit")
    await other.close()
    await streams.drop()
    await page.wait_for_url(re.compile(r"/signin\?next="), timeout=15_000)
    await type_sign_in(page, accounts.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    assert await notes.input_value() == notes_typed

    await page.get_by_role("button", name="Contacted (Alt+1)").click()
    await page.locator("#dispo-result").filter(has_text="Saved: contacted.").wait_for(timeout=10_000)
    assert await notes.input_value() == ""
    await page.reload()  # sent: the draft is gone, not offered again
    await page.locator("#dispo-result").filter(has_text="Saved: contacted.").wait_for(timeout=15_000)
    assert await notes.input_value() == ""
    assert notes_typed not in await page.evaluate("() => JSON.stringify(sessionStorage)")
    response = await api.client.get(f"/v1/calls/{api.call_id}/dispositions", headers=api.auth(api.crm))
    assert [(d["code"], d["notes"]) for d in (await response.json())["dispositions"]] == [("contacted", notes_typed)]


async def held_until(route_event: asyncio.Event, route: Route) -> None:
    """A route handler that answers only once `route_event` is set (a slow script)."""
    await route_event.wait()
    await route.continue_()


async def test_a_form_used_before_its_script_has_loaded_sends_nothing(accounts: Accounts, page: Page) -> None:
    """Enter or a click before the page's script ran used to send the form the browser's way: a
    full page load with the user name and password in the URL."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    script = asyncio.Event()
    await page.route("**/static/signin.js", functools.partial(held_until, script))
    await page.goto(accounts.url("/signin?next=/agent"), wait_until="commit")
    await page.get_by_label("User name").fill(accounts.agent)
    await page.get_by_label("Password").fill(PASSWORD)
    sign_in = page.get_by_role("button", name="Sign in")
    assert await sign_in.is_disabled()  # shown greyed out until it works
    await page.get_by_label("Password").press("Enter")
    await sign_in.click(force=True)
    await page.wait_for_timeout(500)
    assert not [url for url in urls if "password" in url.lower() or accounts.agent in url]
    assert page.url == accounts.url("/signin?next=/agent")

    script.set()  # the script arrives: the same Enter signs in, over the API
    await page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=10_000)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(re.compile(r"^https?://[^/?]+/agent$"), timeout=15_000)

    # The agent's page: searching before its script ran reloaded the page with the search typed.
    agent_script = asyncio.Event()
    await page.route("**/static/agent.js", functools.partial(held_until, agent_script))
    await page.goto(accounts.url("/agent"), wait_until="commit")
    await page.get_by_label("Name, phone or e-mail").fill("Dana")
    await page.get_by_label("Name, phone or e-mail").press("Enter")
    await page.get_by_label("Campaigns").fill("camp-early")
    await page.get_by_label("Campaigns").press("Enter")
    assert await page.get_by_role("button", name="Search").is_disabled()
    await page.wait_for_timeout(500)
    assert page.url == accounts.url("/agent")
    agent_script.set()
    await page.locator("#stream").filter(has_text="live").wait_for(timeout=15_000)
    assert await page.get_by_role("button", name="Search").is_enabled()


async def test_the_kpi_csv_downloads_work_by_keyboard_before_the_figures_load(accounts: Accounts, page: Page) -> None:
    figures = asyncio.Event()  # the KPI figures are slow to come: the downloads do not wait for them
    await page.route(re.compile(r"/v1/reports/agency\?(?!.*format=csv)"), functools.partial(held_until, figures))
    await sign_in_by_keyboard(page, accounts, accounts.supervisor, "/supervisor")
    await page.wait_for_function("() => window.supervisorState && window.supervisorState.ready", timeout=15_000)
    await page.get_by_role("button", name="KPIs").focus()
    await page.keyboard.press("Enter")
    await page.locator("#tab-kpis").wait_for(timeout=5_000)
    await page.get_by_role("button", name="Show").focus()
    for _ in range(10):  # Tab on from the filters to the per-agent table's download
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.id") == "csv-agents":
            break
    assert await page.evaluate("() => document.activeElement.id") == "csv-agents"
    assert not await page.evaluate("() => window.supervisorState.kpisLoaded")
    async with page.expect_download(timeout=10_000) as started:
        await page.keyboard.press("Enter")
    download = await started.value
    assert download.suggested_filename.endswith(".csv")
    saved = await download.path()
    assert saved is not None
    header = (await asyncio.to_thread(Path(saved).read_text)).splitlines()[0]
    assert "dials" in header
    figures.set()
    await page.wait_for_function("() => window.supervisorState.kpisLoaded", timeout=15_000)


# What an agent needs on a call, each to be in the window without scrolling the page.
NEEDED_ON_A_CALL = ("#answer", "#hangup", "#agent-state", "#ready", "#pause", "#lead-name", "#lead-phones button",
                    "#call-progress", "#wrap", "#dispositions button", "#notes", "#callback-date", "#callback-time")
OUTSIDE_THE_WINDOW = """(selectors) => {
  const width = window.innerWidth, height = window.innerHeight;
  const outside = [];
  for (const selector of selectors) {
    const nodes = [...document.querySelectorAll(selector)];
    if (!nodes.length) outside.push(`${selector}: missing`);
    for (const node of nodes) {
      const box = node.getBoundingClientRect();
      if (box.top < 0 || box.left < 0 || box.bottom > height || box.right > width || !box.height)
        outside.push(`${selector} at ${Math.round(box.top)}..${Math.round(box.bottom)} of ${height}`);
    }
  }
  return { outside, scroll: document.documentElement.scrollHeight - document.documentElement.clientHeight };
}"""


@pytest.mark.parametrize("width,height", [(1280, 720), (1366, 768)])
async def test_a_screen_pop_and_its_disposition_fit_the_window_without_scrolling(
        accounts: Accounts, page: Page, width: int, height: int, tmp_path: Path) -> None:
    api = accounts.api
    await page.set_viewport_size({"width": width, "height": height})
    await page.route("**/state", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=wrap_up_state(api)))
    await sign_in_by_keyboard(page, accounts, accounts.agent, "/agent")
    await page.locator("#lead-name").filter(has_text="Dana").wait_for(timeout=15_000)
    await page.locator(f"#lead-calls tr[data-call-id='{api.call_id}']").wait_for(timeout=10_000)
    await page.locator("#callback-time option").first.wait_for(state="attached", timeout=10_000)
    assert await page.locator("#wrap").is_visible() and await page.locator("#pop").is_visible()
    await page.screenshot(path=str(tmp_path / f"agent-console-{width}x{height}.png"))  # to look at when it fails
    assert await page.evaluate(OUTSIDE_THE_WINDOW, list(NEEDED_ON_A_CALL)) == {"outside": [], "scroll": 0}
