"""Browser tests: Debian's Chromium, headless, driven by Playwright, with a fake microphone.

One Chromium process serves the whole test session (`chromium`); each test connects to it over
the DevTools protocol in its own event loop and gets a fresh, isolated browser context
(`browser_context`, `page`), so tests share the start-up cost but no cookies or storage, and
async tests keep pytest-asyncio's default function-scoped loop (fixtures of the other test
folders work as they are).

The microphone is a known recording (`MICROPHONE_WAV`, speech made with espeak-ng, 8 kHz mono)
that Chromium loops as its fake capture device; permission prompts are accepted by the fake UI.
Find it in a call's recording with `tests.audio.contains_audio`.

Pages come from `dialer/web/static/` through an aiohttp static server started in the test
(`static_server`), as `/static/...` on 127.0.0.1: browsers treat http://127.0.0.1 as a secure
context, so getUserMedia and WebRTC work without TLS here.

Chromium flags, and why:
- `--headless=new --no-sandbox --disable-gpu`: no display; tests run as root.
- `--disable-background-networking --disable-component-update --disable-sync --disable-quic
  --no-first-run`: no traffic of its own (the machine reaches no other host; without these,
  Chromium keeps trying and its refused connections pile up).
- `--use-fake-ui-for-media-stream --use-fake-device-for-media-stream
  --use-file-for-fake-audio-capture=WAV`: grant the microphone without a prompt and capture the WAV.
- `--allow-loopback-in-peer-connection`: gather ICE candidates on 127.0.0.1 too, where the
  test Asterisk's media is (Chromium skips loopback by default).
- `--autoplay-policy=no-user-gesture-required`: the page plays the far end without a click.
- a fresh `--user-data-dir` per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from dialer.ari.client import AriClient, AriConfig
from dialer.ari.events import EventStream
from dialer.ari.models import Event
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from dialer.web import STATIC_DIR
from tests.browser.phone import BrowserPhone

E = TypeVar("E", bound=Event)

CHROMIUM = Path("/usr/bin/chromium")
MICROPHONE_WAV = Path(__file__).resolve().parent / "microphone.wav"
BROWSER_DIR = Path(__file__).resolve().parent
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-audio-capture={MICROPHONE_WAV}",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)
START_TIMEOUT = 20.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test against the real stack."""
    for item in items:
        if BROWSER_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class ChromiumProcess:
    """The session's headless Chromium; `cdp_url` is its DevTools endpoint."""

    cdp_url: str
    user_data_dir: Path


@pytest.fixture(scope="session")
def chromium() -> Iterator[ChromiumProcess]:
    """Start Debian's Chromium once per test session (headless, fake media devices)."""
    with launch_chromium() as process:
        yield process


@contextlib.contextmanager
def launch_chromium(*extra_flags: str) -> Iterator[ChromiumProcess]:
    """A headless Chromium with the harness's flags (and `extra_flags`), stopped at the end."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed at /usr/bin/chromium: run scripts/bootstrap.sh (apt-get install chromium)")
    user_data_dir = Path(tempfile.mkdtemp(prefix="dialer-chromium-"))
    log = (user_data_dir.parent / f"{user_data_dir.name}.log").open("wb")
    process = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_FLAGS, *extra_flags, "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", f"--user-data-dir={user_data_dir}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        # Chromium writes the port it chose to DevToolsActivePort once it listens.
        port_file = user_data_dir / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit {process.returncode}); see {log.name}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        yield ChromiumProcess(f"http://127.0.0.1:{port}", user_data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(user_data_dir, ignore_errors=True)
        Path(log.name).unlink(missing_ok=True)


@pytest.fixture
async def browser(chromium: ChromiumProcess) -> AsyncIterator[Browser]:
    """The session's Chromium, connected in this test's event loop."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium.cdp_url)
        try:
            yield connected
        finally:
            # Disconnects and closes the contexts this test made; Chromium keeps running.
            await connected.close()


@pytest.fixture
async def browser_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh context (no cookies, storage or permissions carried over from other tests)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        yield context
    finally:
        await context.close()


class ConsoleLog:
    """What the page printed; shown when a test fails, so a broken page explains itself."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: ConsoleMessage) -> None:
        self.lines.append(f"{message.type}: {message.text}")

    def __str__(self) -> str:
        return "\n".join(self.lines[-50:]) or "(nothing)"


@pytest.fixture
async def page(browser_context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A new tab whose console messages and uncaught errors are printed if the test fails."""
    tab = await browser_context.new_page()
    console = ConsoleLog()
    tab.on("console", console)
    tab.on("pageerror", lambda error: console.lines.append(f"pageerror: {error}"))
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- browser console of {request.node.name} ---\n{console}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


@dataclass(frozen=True)
class StaticServer:
    base_url: str  # e.g. http://127.0.0.1:PORT/static/

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")


@pytest.fixture
async def static_server() -> AsyncIterator[StaticServer]:
    """`dialer/web/static/` served at http://127.0.0.1:PORT/static/ by aiohttp."""
    app = web.Application()
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_local_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield StaticServer(f"http://127.0.0.1:{port}/static/")
    finally:
        await runner.cleanup()


# ---- ARI and the phone page ---------------------------------------------------------------
class StasisEvents:
    """A Stasis app of its own for the test: its events, in order, in a queue."""

    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def deliver(self, event: Event, generation: int) -> None:
        self.queue.put_nowait(event)

    async def next(self, event_type: type[E], channel_id: str, seconds: float = 15.0) -> E:
        async with asyncio.timeout(seconds):
            while True:
                event = await self.queue.get()
                channel = getattr(event, "channel", None)
                if isinstance(event, event_type) and getattr(channel, "id", None) == channel_id:
                    return event


@pytest.fixture
async def stasis(asterisk: AsteriskInstance) -> AsyncIterator[StasisEvents]:
    """An ARI client with a Stasis app of its own (connected), and that app's events."""
    app = f"browser-{uuid.uuid4().hex[:8]}"
    config = AriConfig(asterisk.ari_url, asterisk.config.ari_user, asterisk.config.ari_password, app)
    async with AriClient(config) as ari:
        events = StasisEvents(ari)
        stream = EventStream(ari, events)
        task = asyncio.create_task(stream.run(), name=f"ari-events-{app}")
        try:
            async with asyncio.timeout(10):
                await stream.wait_connected()
            yield events
        finally:
            await stream.stop()
            async with asyncio.timeout(10):
                await task


@pytest.fixture
async def phone(page: Page, static_server: StaticServer) -> AsyncIterator[BrowserPhone]:
    """The phone-check page open in `page`, its phone not started yet (`BrowserPhone.start`)."""
    browser_phone = BrowserPhone(page)
    await browser_phone.open_check_page(static_server.url("phone-check.html"))
    yield browser_phone
    with contextlib.suppress(Exception):
        await browser_phone.stop()
