"""Admission control: the pure policy at its limits, and the gate serving waiters in order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.runtime.admission import Admission, AdmissionLimits, NodeAdmission

pytestmark = pytest.mark.timeout(30)


def test_the_policy_stops_at_each_limit() -> None:
    policy = Admission(AdmissionLimits(max_calls=3, max_setups=2, setups_per_second=10))
    policy.admit(0.0)
    policy.admit(0.0)
    assert not policy.can_admit(0.0)  # two setups under way
    policy.set_up()
    assert policy.can_admit(0.0) and policy.free_lines(0.0) == 1
    policy.admit(0.0)
    assert not policy.can_admit(0.0)  # three calls live: the ceiling
    policy.set_up()
    assert not policy.can_admit(0.0)  # still three calls live
    policy.ended(was_setting_up=False)
    assert policy.can_admit(0.0)


def test_the_rate_limit_lets_the_next_setup_through_a_second_later() -> None:
    policy = Admission(AdmissionLimits(max_calls=100, max_setups=100, setups_per_second=2))
    policy.admit(10.0)
    policy.admit(10.5)
    assert not policy.can_admit(10.9) and policy.next_chance(10.9) == 11.0
    assert policy.can_admit(11.0)


def test_a_slow_ari_allows_one_setup_at_a_time() -> None:
    policy = Admission(AdmissionLimits(max_calls=100, max_setups=10, strained_rtt=0.2))
    policy.rtt = 0.5
    assert policy.can_admit(0.0)
    policy.admit(0.0)
    assert not policy.can_admit(0.0) and policy.free_lines(0.0) == 0
    policy.rtt = 0.05
    assert policy.can_admit(0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["admit", "up", "end_setting_up", "end_up", "tick"]), max_size=80))
def test_the_node_never_carries_more_than_its_limits(steps: list[str]) -> None:
    limits = AdmissionLimits(max_calls=5, max_setups=3, setups_per_second=4)
    policy = Admission(limits)
    now, setting_up, up = 0.0, 0, 0
    for step in steps:
        if step == "admit" and policy.can_admit(now):
            policy.admit(now)
            setting_up += 1
        elif step == "up" and setting_up:
            policy.set_up()
            setting_up, up = setting_up - 1, up + 1
        elif step == "end_setting_up" and setting_up:
            policy.ended(was_setting_up=True)
            setting_up -= 1
        elif step == "end_up" and up:
            policy.ended(was_setting_up=False)
            up -= 1
        elif step == "tick":
            now += 0.3
        assert policy.calls == setting_up + up <= limits.max_calls
        assert policy.setups == setting_up <= limits.max_setups


async def test_waiters_are_served_in_order_as_calls_end() -> None:
    node = NodeAdmission(AdmissionLimits(max_calls=1, max_setups=1, setups_per_second=100))
    first = await node.admit()
    order: list[int] = []

    async def wait(n: int) -> None:
        slot = await node.admit()
        order.append(n)
        slot.release()

    waiters = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert node.waiting == 3 and node.free_lines() == 0
    first.release()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2] and node.waiting == 0


async def test_a_waiter_that_gives_up_takes_no_slot() -> None:
    node = NodeAdmission(AdmissionLimits(max_calls=1, max_setups=1))
    held = await node.admit()
    waiter = asyncio.create_task(node.admit())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    held.release()
    assert node.policy.calls == 0 and node.try_admit() is not None
