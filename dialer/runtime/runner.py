"""One pure, timed state machine driven from an ordered inbox by one task: the pattern every
kind of call (click-to-call, campaign, monitor) runs on.

The machine (`handle(input, now)`, `handle_timer(now)`, `next_timer()`) never sees asyncio.
Its runner owns it, an inbox and one task. ARI events (through the dispatcher's per-owner
queue), commands (API, other runners) and the results of the actions it executes all become
the machine's inputs through that inbox, so the machine sees one ordered stream; runners run
in parallel. A kind of call subclasses `MachineRunner` with three things: `translate` (what an
ARI event means for this machine), `perform` (execute one action, maybe returning a follow-up
input) and `ended`.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from dialer.ari.models import Event

InputT = TypeVar("InputT", contravariant=True)
ActionT = TypeVar("ActionT")
Input = TypeVar("Input")
Action = TypeVar("Action")


class TimedMachine(Protocol[InputT, ActionT]):
    def handle(self, event: InputT, now: float) -> list[ActionT]: ...

    def handle_timer(self, now: float) -> list[ActionT]: ...

    def next_timer(self) -> float | None: ...


async def drive(
    machine: TimedMachine[Input, Action],
    inbox: asyncio.Queue[Input],
    execute: Callable[[list[Action]], Awaitable[None]],
    ended: Callable[[], bool],
    clock: Callable[[], float] = time.time,
) -> None:
    """Feed `machine` until `ended()`: each input from `inbox`, and its timers when they fall due."""
    while not ended():
        deadline = machine.next_timer()
        wait = None if deadline is None else max(0.0, deadline - clock())
        try:
            async with asyncio.timeout(wait):
                item = await inbox.get()
        except TimeoutError:
            await execute(machine.handle_timer(clock()))
            continue
        await execute(machine.handle(item, clock()))


class RunnerHost(Protocol):
    """What owns runners (a `RuntimeSlice`): told once when a runner is done."""

    def forget(self, runner: Any) -> None: ...


class MachineRunner(abc.ABC, Generic[Input, Action]):
    """One machine, its ordered inbox, and the task (`run()`) that executes its actions.

    It is the dispatcher's `EventConsumer` for the channels and bridges its owner id names.
    Events of an ARI connection older than the last one the runner was reconciled with are
    dropped: they were queued before the reconnect, and the reconciliation input
    (`reconcile()`) has already told the machine what is left.
    """

    def __init__(self, owner_id: str, machine: TimedMachine[Input, Action], host: RunnerHost, log: Any) -> None:
        self.owner_id = owner_id
        self.machine = machine
        self.host = host
        self.log = log
        self.inbox: asyncio.Queue[Input] = asyncio.Queue()
        self.done = asyncio.Event()
        self._generation = 0

    # -- the machine's kind --------------------------------------------------------------
    @abc.abstractmethod
    def translate(self, event: Event) -> Sequence[Input]:
        """The machine inputs an ARI event means for this owner (none for most)."""

    @abc.abstractmethod
    async def perform(self, action: Action) -> Input | None:
        """Execute one action; return an input that its result means for the machine, if any."""

    @abc.abstractmethod
    def ended(self) -> bool:
        """The machine has finished: the runner stops."""

    async def notice(self, event: Event) -> None:
        """Act on an event at once, before its inputs are queued (rarely needed)."""

    async def after_end(self) -> None:
        """Work after the machine ended, before the host forgets the runner."""

    # -- EventConsumer -------------------------------------------------------------------
    async def handle_event(self, event: Event, generation: int) -> None:
        if generation < self._generation:
            self.log.debug("stale_event_dropped", type=event.type, generation=generation)
            return
        await self.notice(event)
        for item in self.translate(event):
            self.inbox.put_nowait(item)

    # -- inputs from elsewhere -----------------------------------------------------------
    def feed(self, item: Input) -> None:
        self.inbox.put_nowait(item)

    def reconcile(self, generation: int, item: Input) -> None:
        """After a (re)connect: `item` says what Asterisk still holds; older events are void."""
        self._generation = max(self._generation, generation)
        self.inbox.put_nowait(item)

    # -- the task ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await drive(self.machine, self.inbox, self.execute, self.ended)
            await self.after_end()
        except Exception:
            self.log.exception("runner_failed")
        finally:
            self.done.set()
            self.host.forget(self)

    async def execute(self, actions: list[Action]) -> None:
        """Run actions in order; a follow-up input's actions run after the ones already queued."""
        pending = deque(actions)
        while pending:
            follow_up = await self.perform(pending.popleft())
            if follow_up is not None:
                pending.extend(self.machine.handle(follow_up, time.time()))
