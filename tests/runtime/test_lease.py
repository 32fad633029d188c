"""The controller lease (dialer.runtime.lease): validity by the monotonic clock (pure), and the
Redis lease itself: taken once, fencing tokens growing, renewed, lost, fenced, released."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dialer.runtime.lease import ControllerLease, Fenced, LeaseClock

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_is_valid_until_a_second_before_it_ends_from_the_renewal_sent() -> None:
    state = LeaseClock(seconds=6.0, margin=1.0)
    assert not state.valid(0.0) and state.fenced_at() is None
    state.taken(7, sent_at=10.0)
    assert state.valid(10.0) and state.valid(14.99) and not state.valid(15.0)
    state.renewed(sent_at=13.0)
    assert state.fenced_at() == 18.0
    state.lost = True
    assert not state.valid(13.5) and state.fenced_at() is None
    state.renewed(sent_at=14.0)  # a late answer does not bring a lost lease back
    assert not state.valid(14.5)


@pytest.fixture
async def redis(redis_url: str) -> object:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_one_controller_takes_the_lease_and_each_takeover_has_a_higher_token(
        redis: aioredis.Redis, redis_prefix: str) -> None:
    clock = Clock()
    first = ControllerLease(redis, redis_prefix, "a", seconds=1.0, renew_every=0.2, margin=0.3, clock=clock)
    second = ControllerLease(redis, redis_prefix, "b", seconds=1.0, renew_every=0.2, margin=0.3, clock=clock)
    assert await first.try_take()
    assert not await second.try_take()
    first.check()
    with pytest.raises(Fenced):
        second.check()
    # The first one dies: its lease ends in Redis, the second takes it with a higher token.
    await asyncio.sleep(1.1)
    assert await second.try_take()
    assert second.token is not None and first.token is not None and second.token > first.token
    # The first one wakes up: its renewal finds the other's token and fails; it is fenced.
    assert not await first.renew()
    with pytest.raises(Fenced):
        first.check()


async def test_a_lease_not_renewed_in_time_fences_by_the_controllers_own_clock(
        redis: aioredis.Redis, redis_prefix: str) -> None:
    clock = Clock()
    lease = ControllerLease(redis, redis_prefix, "a", clock=clock)
    assert await lease.try_take()
    clock.now += 4.9
    lease.check()
    clock.now += 0.2  # 5.1 s: a second before the 6 s lease ends
    with pytest.raises(Fenced):
        lease.check()
    lost: list[str] = []
    await asyncio.wait_for(lease.hold(lost.append), 2)
    assert lost == ["not renewed in time"]


async def test_holding_renews_and_a_standby_takes_a_released_lease_at_once(
        redis: aioredis.Redis, redis_prefix: str) -> None:
    lease = ControllerLease(redis, redis_prefix, "a", seconds=1.5, renew_every=0.2, margin=0.3)
    standby = ControllerLease(redis, redis_prefix, "b", seconds=1.5, renew_every=0.2, margin=0.3)
    assert await lease.try_take()
    lost: list[str] = []
    holding = asyncio.create_task(lease.hold(lost.append))
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.take(stop, every=0.1))
    await asyncio.sleep(2.0)  # past the lease's length: renewed all along
    assert not waiting.done() and lost == []
    lease.check()
    holding.cancel()
    await lease.release()
    assert await asyncio.wait_for(waiting, 2)
    standby.check()
    stop.set()


async def test_a_standby_told_to_stop_gives_up_waiting(redis: aioredis.Redis, redis_prefix: str) -> None:
    holder = ControllerLease(redis, redis_prefix, "a")
    assert await holder.try_take()
    standby = ControllerLease(redis, redis_prefix, "b")
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.take(stop, every=0.1))
    await asyncio.sleep(0.3)
    stop.set()
    assert await asyncio.wait_for(waiting, 2) is False
    await holder.release()


def test_the_lease_must_be_renewed_well_before_it_ends() -> None:
    with pytest.raises(ValueError, match="renewed well before"):
        ControllerLease(object(), "p:", "a", seconds=3.0, renew_every=2.5)
