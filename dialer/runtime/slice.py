"""What every kind of call (click-to-call, campaign, monitor) shares around its runners.

A `RuntimeSlice` owns its runners (`MachineRunner`s keyed by owner id) and the task group they
run in; it registers each runner with the dispatcher before anything is originated (so the
first event already has its owner), tells call-end listeners once when a call starts ending
(supervisors' monitors end with their call), drains at shutdown in two steps (let live work
finish within a deadline, then hurry what is left), and after every ARI (re)connect reconciles
its runners and clears our channels and bridges that no runner owns (a previous controller's,
by id prefix). The composition root (`dialer.serve`) fans ARI connect and unrouted events out
over its list of slices.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar

import structlog

from dialer.ari.client import AriClient
from dialer.ari.dispatch import Dispatcher, Route
from dialer.ari.errors import AriError
from dialer.ari.events import Snapshot
from dialer.ari.models import Event, StasisStart
from dialer.runtime.errors import Refused
from dialer.runtime.ids import Prefix, owner_of
from dialer.runtime.live import LiveCall
from dialer.runtime.runner import MachineRunner

log = structlog.get_logger(__name__)

RunnerT = TypeVar("RunnerT", bound=MachineRunner[Any, Any])


class RuntimeSlice(Generic[RunnerT]):
    """Runners of one kind of call, their tasks, and their objects in Asterisk."""

    name: str = "runtime"
    prefixes: tuple[Prefix, ...] = ()

    def __init__(self, ari: AriClient, dispatcher: Dispatcher) -> None:
        self.ari = ari
        self.dispatcher = dispatcher
        self.runners: dict[str, RunnerT] = {}
        # Called once with the call id when a call starts ending (supervisors' monitors end with it).
        self.call_end_listeners: list[Callable[[str], None]] = []
        self._ending: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None
        self._spawned: set[asyncio.Task[None]] = set()
        self._accepting = False

    # -- lifecycle -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The slice's task group; on the way out (after `drain`), tasks still running are
        cancelled, so a runner that never ends cannot hold up the shutdown."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._accepting = True
            try:
                yield
            finally:
                self._accepting = False
                self._tasks = None
                left = [task for task in self._spawned if not task.done()]
                for task in left:
                    task.cancel()
                if left:
                    log.warning("tasks_cancelled_at_shutdown", runtime=self.name, tasks=[t.get_name() for t in left])

    @property
    def accepting(self) -> bool:
        return self._accepting and self._tasks is not None

    def refuse_unless_accepting(self, what: str) -> None:
        if not self.accepting:
            raise Refused(503, "shutting_down", f"the dialer is not {what}")

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        """Run `coroutine` in the slice's task group (named; failures are the coroutine's to log)."""
        if self._tasks is None:
            coroutine.close()
            raise Refused(503, "shutting_down", f"the {self.name} runtime is not running")
        task = self._tasks.create_task(coroutine, name=name)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def start_runner(
        self, runner: RunnerT, *, channel_ids: Iterable[str] = (), bridge_ids: Iterable[str] = ()
    ) -> Route:
        """Register `runner` for its channels and bridges, keep it, and start its task."""
        route = self.dispatcher.register(runner.owner_id, runner, channel_ids=channel_ids, bridge_ids=bridge_ids)
        self.runners[runner.owner_id] = runner
        self.spawn(runner.run(), f"{self.name}-{runner.owner_id}")
        return route

    def forget(self, runner: RunnerT) -> None:
        """`RunnerHost`: the runner is done; it is dropped and its routes removed."""
        self.call_ending(runner.owner_id)
        self._ending.discard(runner.owner_id)
        self.runners.pop(runner.owner_id, None)
        self.dispatcher.unregister(runner.owner_id)
        self.forgotten(runner)

    def forgotten(self, runner: RunnerT) -> None:
        """A slice's own bookkeeping when a runner is dropped."""

    def call_ending(self, call_id: str) -> None:
        """Tell the listeners, once, that a call is ending."""
        if call_id in self._ending:
            return
        self._ending.add(call_id)
        for listener in self.call_end_listeners:
            try:
                listener(call_id)
            except Exception:
                log.exception("call_end_listener_failed", call_id=call_id)

    async def drain(self, deadline_seconds: float) -> None:
        """Stop taking work; let live runners finish within the deadline, then hurry the rest."""
        self._accepting = False
        await self.stop_new_work()
        await self._wait_runners(deadline_seconds)
        for runner in list(self.runners.values()):
            self.hurry(runner)
        await self._wait_runners(self.hurry_seconds)
        await self.after_drain()

    hurry_seconds: float = 15.0

    async def stop_new_work(self) -> None:
        """First step of a drain (campaigns stop dialing)."""

    def hurry(self, runner: RunnerT) -> None:
        """Second step of a drain: end what is still live (hang up)."""

    async def after_drain(self) -> None:
        """Last step of a drain (agents log out)."""

    async def _wait_runners(self, seconds: float) -> None:
        waiting = [runner.done.wait() for runner in self.runners.values()]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*waiting)

    # -- Asterisk connection ------------------------------------------------------------------
    def owns(self, owner_id: str) -> bool:
        """Whether an owner id (a call, a session) is live in this controller."""
        return owner_id in self.runners

    def ours(self, object_id: str) -> str | None:
        """The owner id of one of this slice's channels or bridges, by prefix, or None."""
        for prefix in self.prefixes:
            owner = owner_of(object_id, prefix)
            if owner is not None:
                return owner
        return None

    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        """After every (re)connect: reconcile live runners, then clear orphans."""
        await self.reconcile(generation, snapshot)
        await self.sweep_orphans(generation, snapshot)

    async def reconcile(self, generation: int, snapshot: Snapshot) -> None:
        """Tell each live runner what Asterisk still holds (the slice's own input)."""

    async def sweep_orphans(self, generation: int, snapshot: Snapshot) -> None:
        """Hang up our channels and destroy our bridges that no live owner holds (a dead
        controller's): a leg nobody drives would otherwise stay up for hours."""
        channels = [c.id for c in snapshot.channels if (owner := self.ours(c.id)) and not self.owns(owner)]
        bridges = [b.id for b in snapshot.bridges if (owner := self.ours(b.id)) and not self.owns(owner)]
        for channel_id in channels:
            with contextlib.suppress(AriError):
                await self.ari.hangup(channel_id, reason="normal")
        for bridge_id in bridges:
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(bridge_id)
        if channels or bridges:
            log.warning("orphans_cleared", runtime=self.name, generation=generation, channels=channels,
                        bridges=bridges)

    async def on_unrouted(self, event: Event, generation: int) -> None:
        """An event no runner owns: a leg of ours entering the app without a live owner (a dead
        controller's) is hung up; the slice may claim other events (`claim`)."""
        if await self.claim(event):
            return
        if isinstance(event, StasisStart) and (owner := self.ours(event.channel.id)) and not self.owns(owner):
            with contextlib.suppress(AriError):
                await self.ari.hangup(event.channel.id, reason="normal")

    async def claim(self, event: Event) -> bool:
        """Handle an unrouted event that starts this slice's work (an inbound call); True if taken."""
        return False


class CallSlice(RuntimeSlice[RunnerT]):
    """A slice whose runners are calls: supervisors see and monitor them (`LiveCallSource`)."""

    def describe(self, runner: RunnerT) -> LiveCall:
        """A live call as a supervisor's wallboard and the monitor see it."""
        raise NotImplementedError

    def live_calls(self) -> list[LiveCall]:
        """The calls in progress."""
        return [self.describe(runner) for runner in list(self.runners.values())]

    def live_call(self, call_id: str) -> LiveCall | None:
        runner = self.runners.get(call_id)
        return None if runner is None else self.describe(runner)
