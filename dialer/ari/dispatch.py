"""Route each ARI event to the call that owns it: one ordered queue and one task per call.

A call object registers for the channel ids and bridge ids it owns (before it originates, so
the first event of its channel already has a home). The dispatcher is the `EventSink` of the
`EventStream`: `deliver()` runs inside the WebSocket reader, so it only looks up owners and
puts the event on their unbounded queues (never awaits). Each call's consumer task handles its
events strictly in order; calls run in parallel, and a slow call does not hold up another.
Events no call owns (e.g. the `StasisStart` of an inbound call) go to the default handler,
which has its own ordered queue.

Why not a task per event: a `StasisEnd` handler could overtake its `StasisStart`, and a
failure would vanish with its task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol

import structlog

from dialer.ari.models import Bridge, Channel, Event, LiveRecording, Playback, UnknownEvent

log = structlog.get_logger(__name__)


class EventConsumer(Protocol):
    """A call (or agent) object that handles the events of what it owns, one at a time."""

    async def handle_event(self, event: Event, generation: int) -> None: ...


DefaultHandler = Callable[[Event, int], Awaitable[None]]

DEFAULT_ROUTE_ID: Final = "<default>"


def channel_key(channel_id: str) -> str:
    """The routing key of a channel (the same form as ARI's ``target_uri``)."""
    return f"channel:{channel_id}"


def bridge_key(bridge_id: str) -> str:
    """The routing key of a bridge (the same form as ARI's ``target_uri``)."""
    return f"bridge:{bridge_id}"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(field.name for field in dataclasses.fields(cls))
    return names


def _collect(value: object, keys: list[str], depth: int) -> None:
    if isinstance(value, Channel):
        keys.append(channel_key(value.id))
    elif isinstance(value, Bridge):
        keys.append(bridge_key(value.id))
    elif isinstance(value, Playback | LiveRecording):
        # target_uri is "channel:<id>" or "bridge:<id>" (also "endpoint:..." / "deviceState:...").
        if value.target_uri.startswith(("channel:", "bridge:")):
            keys.append(value.target_uri)
    elif depth < 2 and dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Containers such as ChannelTransfer.refer_to (ReferTo) hold channels and bridges too.
        for name in _field_names(type(value)):
            _collect(getattr(value, name), keys, depth + 1)


def routing_keys(event: Event) -> tuple[str, ...]:
    """Routing keys of every channel, bridge, playback or recording target the event names.

    In field order, without repeats: `Dial` gives caller and peer, `ChannelEnteredBridge` the
    channel and the bridge, `PlaybackFinished` its target.
    """
    if isinstance(event, UnknownEvent):
        return ()
    keys: list[str] = []
    for name in _field_names(type(event)):
        _collect(getattr(event, name), keys, 1)
    return tuple(dict.fromkeys(keys))


class _Close(enum.Enum):
    DRAIN = "drain"


_Item = tuple[Event, int] | _Close


class Route:
    """One owner's registration: its routing keys, ordered queue and consumer task."""

    def __init__(self, dispatcher: Dispatcher, call_id: str, handler: DefaultHandler) -> None:
        self.call_id = call_id
        self._dispatcher = dispatcher
        self._handler = handler
        self.keys: set[str] = set()
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.handled = 0
        self.failures = 0

    def add_channel(self, channel_id: str) -> None:
        """Also route events of this channel here (e.g. a snoop or the lead's leg)."""
        self._dispatcher.index_key(self, channel_key(channel_id))

    def add_bridge(self, bridge_id: str) -> None:
        """Also route events of this bridge here."""
        self._dispatcher.index_key(self, bridge_key(bridge_id))

    def remove_channel(self, channel_id: str) -> None:
        """Stop routing this channel's events here."""
        self._dispatcher.unindex_key(self, channel_key(channel_id))

    def remove_bridge(self, bridge_id: str) -> None:
        """Stop routing this bridge's events here."""
        self._dispatcher.unindex_key(self, bridge_key(bridge_id))

    async def wait_closed(self) -> None:
        """Wait until the consumer task has finished (after `Dispatcher.unregister`)."""
        if self.task is not None:
            await asyncio.wait([self.task])

    async def consume(self) -> None:
        """The route's task (started by the dispatcher): its events, one at a time, in order."""
        while True:
            item = await self.queue.get()
            if item is _Close.DRAIN:
                return
            event, generation = item
            try:
                await self._handler(event, generation)
            except Exception:
                # The call's own bug: log it with the call id and keep serving its later
                # events (a ChannelDestroyed must still reach it), never kill other calls.
                self.failures += 1
                log.exception(
                    "ari.dispatch.consumer_failed",
                    call_id=self.call_id,
                    event_type=event.type,
                    generation=generation,
                )
            else:
                self.handled += 1


class Dispatcher:
    """Owns every per-call consumer task; use as ``async with Dispatcher(default) as d:``.

    Leaving the block drains the queues (within `drain_seconds`) and cancels what is left.
    """

    def __init__(self, default_handler: DefaultHandler, *, drain_seconds: float = 5.0) -> None:
        self._default = Route(self, DEFAULT_ROUTE_ID, default_handler)
        self._routes: dict[str, Route] = {}
        self._by_key: dict[str, list[Route]] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._accepting = False
        self._drain_seconds = drain_seconds
        self.dropped = 0
        """Events delivered while not accepting (before start or during shutdown)."""

    async def __aenter__(self) -> Dispatcher:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._start(self._default)
        self._accepting = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._tasks is not None
        try:
            await self.shutdown(drain=exc_info[0] is None, deadline_seconds=self._drain_seconds)
        finally:
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None

    def _start(self, route: Route) -> None:
        if self._tasks is None:
            raise RuntimeError("Dispatcher is not running; use `async with Dispatcher(...)`")
        route.task = self._tasks.create_task(route.consume(), name=f"ari-call-{route.call_id}")

    # -- registration --------------------------------------------------------------------------

    def register(
        self,
        call_id: str,
        consumer: EventConsumer,
        *,
        channel_ids: Iterable[str] = (),
        bridge_ids: Iterable[str] = (),
    ) -> Route:
        """Start routing the events of these channels and bridges to `consumer`, in order.

        Register before originating, so the channel's first event already has an owner.
        Several owners may share a key (e.g. an agent's nailed-up leg and the call it is in);
        each then gets the event.
        """
        if not self._accepting:
            raise RuntimeError("Dispatcher is not accepting registrations (not started or shutting down)")
        if call_id in self._routes or call_id == DEFAULT_ROUTE_ID:
            raise ValueError(f"call {call_id!r} is already registered with the dispatcher")
        route = Route(self, call_id, consumer.handle_event)
        self._routes[call_id] = route
        for channel_id in channel_ids:
            route.add_channel(channel_id)
        for bridge_id in bridge_ids:
            route.add_bridge(bridge_id)
        self._start(route)
        return route

    def unregister(self, call_id: str, *, drain: bool = True) -> None:
        """Stop routing to this call. With `drain`, its consumer first handles what is queued;
        otherwise the consumer is cancelled. Safe to call from the call's own handler."""
        route = self._routes.pop(call_id, None)
        if route is None:
            return
        for key in list(route.keys):
            self.unindex_key(route, key)
        self._close(route, drain=drain)

    def _close(self, route: Route, *, drain: bool) -> None:
        route.closing = True
        if drain:
            route.queue.put_nowait(_Close.DRAIN)
        elif route.task is not None:
            route.task.cancel()

    def route(self, call_id: str) -> Route | None:
        """The registration of a call, if any."""
        return self._routes.get(call_id)

    @property
    def call_ids(self) -> tuple[str, ...]:
        return tuple(self._routes)

    def index_key(self, route: Route, key: str) -> None:
        """Route events naming `key` to `route` too (a `Route` adds its channels and bridges)."""
        if route.closing:
            raise RuntimeError(f"call {route.call_id!r} is unregistered; it cannot take new keys")
        if key in route.keys:
            return
        route.keys.add(key)
        self._by_key.setdefault(key, []).append(route)

    def unindex_key(self, route: Route, key: str) -> None:
        """Stop routing events naming `key` to `route`."""
        route.keys.discard(key)
        owners = self._by_key.get(key)
        if owners is None:
            return
        if route in owners:
            owners.remove(route)
        if not owners:
            del self._by_key[key]

    # -- delivery ------------------------------------------------------------------------------

    def deliver(self, event: Event, generation: int) -> None:
        """Queue the event for every owner of any of its keys, else for the default handler.

        Never blocks: called from the WebSocket reader.
        """
        if not self._accepting:
            self.dropped += 1
            return
        owners: list[Route] = []
        for key in routing_keys(event):
            for route in self._by_key.get(key, ()):
                if route not in owners:
                    owners.append(route)
        if not owners:
            owners.append(self._default)
        for route in owners:
            route.queue.put_nowait((event, generation))

    def queue_depths(self) -> dict[str, int]:
        """Events waiting per call (and for the default handler), for metrics."""
        depths = {call_id: route.queue.qsize() for call_id, route in self._routes.items()}
        depths[DEFAULT_ROUTE_ID] = self._default.queue.qsize()
        return depths

    # -- shutdown ------------------------------------------------------------------------------

    async def shutdown(self, *, drain: bool = True, deadline_seconds: float = 5.0) -> None:
        """Stop taking events; with `drain`, let consumers finish their queues within the
        deadline, then cancel whatever is still running."""
        self._accepting = False
        routes = [*self._routes.values(), self._default]
        self._routes.clear()
        self._by_key.clear()
        for route in routes:
            if not route.closing:
                self._close(route, drain=drain)
        tasks = [route.task for route in routes if route.task is not None and not route.task.done()]
        if not tasks:
            return
        if not drain:
            await asyncio.wait(tasks)  # already cancelled by _close
            return
        _done, pending = await asyncio.wait(tasks, timeout=deadline_seconds)
        for task in pending:
            log.warning("ari.dispatch.cancelled_at_shutdown", task=task.get_name())
            task.cancel()
        if pending:
            await asyncio.wait(pending)
