"""Admission control for one Asterisk node: overload makes dials wait, it never makes them fail.

Every ringing originate holds an Asterisk thread, and a node pushed past what it can set up
fails calls (originates refused, recordings not started, legs lost). So each call asks the
node's admission before it is set up, and waits (FIFO) while the node is full:

- at most `max_calls` calls live on the node (a configured ceiling, from measured capacity);
- at most `max_setups` calls being set up at once (originated, not yet answered or ended);
- at most `setups_per_second` new setups a second (smooths bursts);
- while ARI answers slowly (its round trip above `strained_rtt`, measured by a probe), no new
  setup starts while another is under way.

The campaign pacer sees the same limits as a cap on the lines it may open, so a campaign
dials fewer lines instead of dialing lines the node cannot carry; answered calls are never
held back (a person is connected to an agent as ever: the 2-second rule does not wait here).
`Admission` is the pure policy; `NodeAdmission` the asyncio gate around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AdmissionLimits:
    max_calls: int = 40
    max_setups: int = 8
    setups_per_second: float = 10.0
    strained_rtt: float = 0.25  # seconds

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.max_setups < 1 or self.setups_per_second <= 0 or self.strained_rtt <= 0:
            raise ValueError("admission limits must be positive")


class Admission:
    """The node's load and whether one more call may be set up now. Pure: driven with `now`."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.calls = 0
        self.setups = 0
        self.rtt = 0.0
        self._recent: deque[float] = deque()

    def _forget_old(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()

    @property
    def strained(self) -> bool:
        return self.rtt > self.limits.strained_rtt

    def can_admit(self, now: float) -> bool:
        self._forget_old(now)
        limits = self.limits
        return (
            self.calls < limits.max_calls
            and self.setups < limits.max_setups
            and len(self._recent) < limits.setups_per_second
            and not (self.strained and self.setups > 0)
        )

    def admit(self, now: float) -> None:
        self.calls += 1
        self.setups += 1
        self._recent.append(now)

    def set_up(self) -> None:
        """A call admitted earlier is up (answered) or no longer being set up."""
        self.setups = max(0, self.setups - 1)

    def ended(self, *, was_setting_up: bool) -> None:
        self.calls = max(0, self.calls - 1)
        if was_setting_up:
            self.set_up()

    def free_lines(self, now: float) -> int:
        """How many more calls could be set up right now (for the pacer)."""
        self._forget_old(now)
        limits = self.limits
        if self.strained and self.setups > 0:
            return 0
        return max(0, min(limits.max_calls - self.calls, limits.max_setups - self.setups,
                          int(limits.setups_per_second) - len(self._recent)))

    def next_chance(self, now: float) -> float | None:
        """When the rate limit next lets a setup through (None: it is not what holds it back)."""
        self._forget_old(now)
        if len(self._recent) >= self.limits.setups_per_second and self._recent:
            return self._recent[0] + 1.0
        return None


class Slot:
    """One admitted call's hold on the node: `set_up()` when it is answered (or fails), `release()`
    when it ends. Both are idempotent."""

    def __init__(self, node: NodeAdmission) -> None:
        self._node = node
        self._setting_up = True
        self._released = False

    def set_up(self) -> None:
        if self._setting_up and not self._released:
            self._setting_up = False
            self._node.setup_done()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._node.call_ended(was_setting_up=self._setting_up)
            self._setting_up = False


class Admitter(Protocol):
    """What the slices ask admission control: one node's (`NodeAdmission`) or a cluster's
    (`dialer.runtime.cluster.ClusterAdmission`, which places the call's `owner` on a node, near
    the `agents`' legs it may be bridged with)."""

    @property
    def waiting(self) -> int: ...

    def free_lines(self) -> int: ...

    def try_admit(self, owner: str | None = None, agents: Sequence[str] = ()) -> Slot | None: ...

    async def admit(self, owner: str | None = None, agents: Sequence[str] = ()) -> Slot: ...


class NodeAdmission:
    """Calls wait here, in order, until the node can set them up. A call waiting is a future in
    a queue; whenever capacity frees (a call up or ended, ARI fast again, the rate window moving
    on) the queue is served from the front, synchronously, so nothing overtakes."""

    def __init__(self, limits: AdmissionLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = Admission(limits)
        self._clock = clock
        self._queue: deque[asyncio.Future[Slot]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def free_lines(self) -> int:
        return 0 if self._queue else self.policy.free_lines(self._clock())

    def try_admit(self, owner: str | None = None, agents: Sequence[str] = ()) -> Slot | None:
        """A slot at once, or None when the call would have to wait. (`owner` and `agents` place a
        call on a cluster's node; one node has nothing to choose.)"""
        del owner, agents
        now = self._clock()
        if self._queue or not self.policy.can_admit(now):
            return None
        self.policy.admit(now)
        return Slot(self)

    async def admit(self, owner: str | None = None, agents: Sequence[str] = ()) -> Slot:
        """Wait (in order) until the node can set one more call up."""
        del owner, agents
        slot = self.try_admit()
        if slot is not None:
            return slot
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        self._serve()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                waiter.result().release()  # admitted just as the caller gave up: give it back
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(waiter)
            raise

    def _serve(self) -> None:
        """Admit waiters from the front while the node can take them; otherwise wake again when
        the rate window lets the next one through."""
        while self._queue:
            now = self._clock()
            if not self.policy.can_admit(now):
                chance = self.policy.next_chance(now)
                if chance is not None and self._timer is None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(max(0.0, chance - now) + 0.001, self._timer_fired)
                return
            waiter = self._queue.popleft()
            if waiter.done():
                continue
            self.policy.admit(now)
            waiter.set_result(Slot(self))

    def _timer_fired(self) -> None:
        self._timer = None
        self._serve()

    def setup_done(self) -> None:
        self.policy.set_up()
        self._serve()

    def call_ended(self, *, was_setting_up: bool) -> None:
        self.policy.ended(was_setting_up=was_setting_up)
        self._serve()

    def observe_rtt(self, seconds: float) -> None:
        self.policy.rtt = seconds
        self._serve()

    async def probe(self, ping: Callable[[], Awaitable[object]], every: float = 1.0) -> None:
        """Measure ARI's round trip every `every` seconds (the node's load as the dialer feels it)."""
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(5.0):
                    await ping()
                self.observe_rtt(time.monotonic() - started)
            except Exception:
                self.observe_rtt(5.0)
            await asyncio.sleep(every)
