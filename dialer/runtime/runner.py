"""Driving a pure, timed state machine from an ordered inbox: the one loop both runtimes use.

The machine (`handle(input, now)`, `handle_timer(now)`, `next_timer()`) never sees asyncio;
this loop waits for the next input or the machine's next timer, whichever comes first, and
hands the resulting actions to the runtime's executor, one batch at a time, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

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
