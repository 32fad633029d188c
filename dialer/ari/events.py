"""The ARI event WebSocket: one reader, reconnect with backoff, generations, snapshot hook.

Facts it respects (Asterisk 22):
- Asterisk closes the WebSocket when one of its writes takes longer than
  `websocket_write_timeout`; so the reader never blocks: it parses each message and hands the
  event to a synchronous, non-blocking `EventSink` (the dispatcher's queues).
- While the socket is down Asterisk drops our app's events and `Stasis()` fails; so after every
  (re)connect we read `/applications/{app}`, `/channels` and `/bridges` afresh and hand that
  snapshot to `on_connected(generation, snapshot)`, for the controller to reconcile.
- Every successful connect bumps `generation`; a handle from before raises
  `StaleGenerationError` when checked (`EventStream.check`), because Asterisk may have
  restarted in between and reused nothing we remember.
- `ApplicationReplaced` means another connection took our app name: we stop and report
  (`run()` raises `ApplicationReplacedError`) rather than reconnect and fight over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
import structlog

from crm_bridge.backoff import Backoff
from dialer.ari.client import AriClient
from dialer.ari.errors import ApplicationReplacedError, AriError, StaleGenerationError
from dialer.ari.models import Application, ApplicationReplaced, Bridge, Channel, Event, parse_event

log = structlog.get_logger(__name__)

# Asterisk's http.conf session_keep_alive is 15 s; ping well inside it so a dead peer is
# noticed (aiohttp closes the socket when a pong does not come back within half the period).
DEFAULT_HEARTBEAT_SECONDS: Final = 5.0
DEFAULT_RECONNECT_BACKOFF: Final = Backoff(initial=0.5, maximum=30.0)


@dataclass(frozen=True)
class Snapshot:
    """What Asterisk had right after a (re)connect, for reconciling the calls we track."""

    application: Application
    channels: tuple[Channel, ...]
    bridges: tuple[Bridge, ...]


class EventSink(Protocol):
    """Receives every parsed event. Must not block: it runs inside the WebSocket reader."""

    def deliver(self, event: Event, generation: int) -> None: ...


ConnectedHook = Callable[[int, Snapshot], Awaitable[None]]


class EventStream:
    """Keeps one event WebSocket to ARI open for our Stasis app and feeds an `EventSink`.

    Run it as a task owned by the controller (``tg.create_task(stream.run(), name="ari-events")``)
    and end it with `await stream.stop()`.
    """

    def __init__(
        self,
        client: AriClient,
        sink: EventSink,
        *,
        on_connected: ConnectedHook | None = None,
        app: str | None = None,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        connect_timeout: float = 10.0,
        backoff: Backoff = DEFAULT_RECONNECT_BACKOFF,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < heartbeat_seconds < 15:
            raise ValueError(f"heartbeat_seconds must be under Asterisk's 15 s keep-alive, got {heartbeat_seconds}")
        self._client = client
        self._sink = sink
        self._on_connected = on_connected
        self.app = app or client.config.app
        self._heartbeat = heartbeat_seconds
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._unit_random = unit_random
        self._generation = 0
        self._connected = False
        self._hook_done = False
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._changed = asyncio.Condition()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.snapshots_taken = 0
        """How many times `on_connected` was handed a fresh snapshot."""

    @property
    def generation(self) -> int:
        """Bumped on every successful (re)connect; 0 before the first."""
        return self._generation

    @property
    def connected(self) -> bool:
        return self._connected

    def check(self, generation: int) -> None:
        """Raise `StaleGenerationError` if `generation` is not the current connection's."""
        if generation != self._generation:
            raise StaleGenerationError(generation, self._generation)

    async def wait_connected(self, after_generation: int = 0) -> int:
        """Wait until connected with a generation above `after_generation`, and its
        `on_connected` hook has run; return that generation. Use `asyncio.timeout` around it."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._connected and self._generation > after_generation and self._hook_done
            )
            return self._generation

    async def stop(self) -> None:
        """Close the socket and make `run()` return (no reconnect)."""
        self._stopping = True
        self._stop_requested.set()
        if self._ws is not None:
            await self._ws.close()

    async def run(self) -> None:
        """Connect, read, reconnect with backoff until `stop()`.

        Raises `ApplicationReplacedError` when another connection takes our app name.
        """
        failures = 0
        while not self._stopping:
            ws = await self._connect()
            if ws is None:
                failures += 1
                await self._sleep(self._backoff.delay(failures, self._unit_random))
                continue
            failures = 0
            try:
                replaced = await self._serve(ws)
            except (aiohttp.ClientError, OSError) as error:
                # A reset in the middle of a read or a heartbeat: the same as a close.
                log.warning("ari.events.connection_lost", app=self.app, error=f"{type(error).__name__}: {error}")
                replaced = False
            if replaced:
                raise ApplicationReplacedError(
                    f"another connection registered the Stasis app {self.app!r}; not reconnecting"
                )
            if not self._stopping:
                # The first retry after a drop waits a little too, so that an Asterisk that
                # drops everyone at once is not hit by every client in the same millisecond.
                await self._sleep(self._backoff.delay(1, self._unit_random))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_requested.wait()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        url = self._client.config.url.rstrip("/") + "/events"
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await self._client.session.ws_connect(
                    url,
                    params={"app": self.app, "subscribeAll": "false"},
                    heartbeat=self._heartbeat,
                    autoping=True,
                )
        except (TimeoutError, aiohttp.ClientError) as error:
            log.warning("ari.events.connect_failed", app=self.app, error=f"{type(error).__name__}: {error}")
            return None
        return ws

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Read one connection until it closes; True if our app was replaced."""
        self._ws = ws
        async with self._changed:
            self._generation += 1
            self._connected = True
            self._hook_done = False
            self._changed.notify_all()
        generation = self._generation
        log.info("ari.events.connected", app=self.app, generation=generation)
        replaced = False
        try:
            async with asyncio.TaskGroup() as tasks:
                snapshot_task = tasks.create_task(
                    self._notify_connected(ws, generation), name=f"ari-snapshot-g{generation}"
                )
                # Reading happens in this task, concurrently with the snapshot: events that
                # arrive meanwhile still reach the sink in order.
                replaced = await self._read(ws, generation)
                snapshot_task.cancel()
        finally:
            self._ws = None
            if not ws.closed:
                await ws.close()
            async with self._changed:
                self._connected = False
                self._changed.notify_all()
            log.info(
                "ari.events.disconnected",
                app=self.app,
                generation=generation,
                close_code=ws.close_code,
                replaced=replaced,
                stopping=self._stopping,
            )
        return replaced

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, generation: int) -> bool:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                event = self._parse(message.data)
                if event is None:
                    continue
                try:
                    self._sink.deliver(event, generation)
                except Exception:
                    log.exception("ari.events.sink_failed", event_type=event.type, generation=generation)
                if isinstance(event, ApplicationReplaced):
                    log.error("ari.events.application_replaced", app=self.app, generation=generation)
                    return True
            elif message.type is aiohttp.WSMsgType.ERROR:
                log.warning("ari.events.socket_error", error=str(ws.exception()), generation=generation)
                break
        return False

    def _parse(self, text: str) -> Event | None:
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError(f"ARI event: expected a JSON object, got {type(raw).__name__}")
            return parse_event(raw)
        except ValueError as error:
            # A bad event is Asterisk's bug or ours; dropping it beats dropping the connection.
            log.warning("ari.events.unparsable", error=str(error), text=text[:200])
            return None

    async def _notify_connected(self, ws: aiohttp.ClientWebSocketResponse, generation: int) -> None:
        try:
            snapshot = Snapshot(
                application=await self._client.get_application(self.app),
                channels=await self._client.list_channels(),
                bridges=await self._client.list_bridges(),
            )
        except AriError as error:
            # Without a snapshot the controller cannot reconcile: start over with a new generation.
            log.warning("ari.events.snapshot_failed", generation=generation, error=str(error))
            await ws.close()
            return
        if self._on_connected is not None:
            try:
                await self._on_connected(generation, snapshot)
            except Exception:
                log.exception("ari.events.on_connected_failed", generation=generation)
        self.snapshots_taken += 1
        async with self._changed:
            if self._generation == generation:
                self._hook_done = True
            self._changed.notify_all()
