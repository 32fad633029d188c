"""The controller lease: of several `dialer serve` processes sharing PostgreSQL and Redis, one is
active (drives the nodes, runs the campaigns); the others wait on standby and take over within
seconds when the active one dies (docs/cluster.md).

Why Redis and not a PostgreSQL advisory lock: a lease must expire on a timer the survivor can
count on; an advisory lock is released only when PostgreSQL notices the dead session, which for
a vanished host depends on TCP keepalives and can take minutes.

- The active controller holds `lease:controller` (`SET NX PX 6000`), renewed every 2 s by a
  compare-and-expire script. Taking the lease also takes a *fencing token* (`INCR`), stored in
  the lease's value: each takeover has a higher token than every earlier one.
- A controller that cannot renew stops issuing ARI commands at `expiry - 1 s` by its own
  clock (`CLOCK_BOOTTIME`) (Asterisk cannot check tokens, so it fences itself: `check()` raises before
  every command that changes something), and the process ends (a supervisor restarts it on
  standby). A controller stopped past its lease (SIGSTOP, a suspended host) wakes up fenced: its
  clock says the lease is over before any command goes out.
- A renewal that finds another controller's token in the lease is a definite loss (fenced at once).
- A standby tries to take the free lease every second: a SIGKILLed owner's lease expires within
  6 s and the standby holds it within 1 s more; its start-up reconciliation (calls rows the dead
  controller left open closed once, its agents' legs adopted from Redis, its other channels
  hung up, its running campaigns resumed) does the rest.

`LeaseClock` is the pure part (validity by the controller's clock); `ControllerLease` the Redis IO.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from dialer.ari.errors import AriUnavailable

log = structlog.get_logger(__name__)


def boot_clock() -> float:
    """Seconds since boot, a suspension included (a host suspended past its lease must wake up
    fenced); the monotonic clock where there is no such clock."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


LEASE_SECONDS = 6.0
RENEW_EVERY_SECONDS = 2.0
FENCE_MARGIN_SECONDS = 1.0
TAKE_EVERY_SECONDS = 1.0

# Take the lease if free, with a new fencing token in its value; 0 when another holds it.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
  return token
end
return 0
"""
# Extend the lease only while it is still ours (same owner and token).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Fenced(AriUnavailable):
    """This controller's lease is over (or another controller holds it): it issues no command."""


@dataclass
class LeaseClock:
    """Whether the lease still holds, by this process's clock (seconds since boot). A renewal counts from
    the moment its request was *sent* (the lease may have been extended any time after), so the
    controller always believes its lease ends no later than Redis does."""

    seconds: float = LEASE_SECONDS
    margin: float = FENCE_MARGIN_SECONDS
    token: int | None = None
    renewed_at: float | None = None
    lost: bool = False

    def taken(self, token: int, sent_at: float) -> None:
        self.token, self.renewed_at, self.lost = token, sent_at, False

    def renewed(self, sent_at: float) -> None:
        if not self.lost:
            self.renewed_at = sent_at

    def fenced_at(self) -> float | None:
        """When this controller must stop issuing commands (None: it holds no lease)."""
        if self.renewed_at is None or self.lost:
            return None
        return self.renewed_at + self.seconds - self.margin

    def valid(self, now: float) -> bool:
        fenced_at = self.fenced_at()
        return fenced_at is not None and now < fenced_at


class ControllerLease:
    """The active controller's lease in Redis (see the module's docstring)."""

    def __init__(self, redis: Any, prefix: str, owner: str, *, seconds: float = LEASE_SECONDS,
                 renew_every: float = RENEW_EVERY_SECONDS, margin: float = FENCE_MARGIN_SECONDS,
                 clock: Callable[[], float] = boot_clock) -> None:
        if not renew_every < seconds - margin:
            raise ValueError("the lease must be renewed well before it ends")
        self.redis = redis
        self.key = f"{prefix}lease:controller"
        self.token_key = f"{prefix}lease-token:controller"
        self.owner = owner
        self.renew_every = renew_every
        self.clock = clock
        self.state = LeaseClock(seconds=seconds, margin=margin)

    @property
    def token(self) -> int | None:
        return self.state.token

    @property
    def value(self) -> str:
        return f"{self.owner}:{self.state.token}"

    def _ms(self) -> int:
        return int(self.state.seconds * 1000)

    async def try_take(self) -> bool:
        """Take the lease if it is free (a new fencing token); whether this controller holds it."""
        sent_at = self.clock()
        token = int(await self.redis.eval(_ACQUIRE, 2, self.key, self.token_key, self.owner, self._ms()))
        if token:
            self.state.taken(token, sent_at)
        return bool(token)

    async def take(self, stop: asyncio.Event | None = None, every: float = TAKE_EVERY_SECONDS) -> bool:
        """Wait on standby until the lease is ours (True), or `stop` is set (False). Redis being
        unreachable is waited out: a standby that cannot see the lease cannot take it."""
        while stop is None or not stop.is_set():
            try:
                if await self.try_take():
                    return True
            except Exception as error:
                log.warning("lease_unreadable", error=repr(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    if stop is not None:
                        await stop.wait()
                    else:
                        await asyncio.sleep(every)
        return False

    async def renew(self) -> bool:
        """Extend the lease; False when another controller holds it (a definite loss)."""
        sent_at = self.clock()
        remaining = (self.state.fenced_at() or sent_at) - sent_at
        async with asyncio.timeout(max(0.1, remaining)):
            extended = int(await self.redis.eval(_RENEW, 1, self.key, self.value, self._ms()))
        if extended:
            self.state.renewed(sent_at)
            return True
        self.state.lost = True
        return False

    async def hold(self, on_lost: Callable[[str], None]) -> None:
        """Renew every `renew_every` seconds for as long as the lease holds; `on_lost(why)` once
        when it does not (another controller has it, or it could not be renewed in time)."""
        while True:
            fenced_at = self.state.fenced_at()
            if fenced_at is None:
                on_lost("taken by another controller")
                return
            wait = min(self.renew_every, max(0.0, fenced_at - self.clock()))
            await asyncio.sleep(wait)
            if not self.state.valid(self.clock()):
                on_lost("not renewed in time")
                return
            try:
                if not await self.renew():
                    on_lost("taken by another controller")
                    return
            except Exception as error:  # Redis slow or down: try again while the lease lasts
                log.warning("lease_not_renewed", error=repr(error), token=self.token)

    def check(self) -> None:
        """Raise `Fenced` unless the lease holds now (before every ARI command that changes something)."""
        if not self.state.valid(self.clock()):
            raise Fenced(f"controller {self.owner} no longer holds the lease (token {self.token})")

    async def release(self) -> None:
        """Give the lease up at a clean shutdown, so a standby takes over at once."""
        with contextlib.suppress(Exception):
            await self.redis.eval(_RELEASE, 1, self.key, self.value)
        self.state.lost = True
