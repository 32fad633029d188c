"""The reconnect/retry backoff policy: exponential ceiling, full jitter, validation."""

from __future__ import annotations

import random

import pytest

from crm_bridge.backoff import Backoff


def test_ceiling_grows_exponentially_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, multiplier=2.0)
    assert [backoff.ceiling(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_very_long_outage_does_not_overflow() -> None:
    assert Backoff(initial=0.5, maximum=30.0).ceiling(10_000) == 30.0


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    assert backoff.delay(3, lambda: 0.0) == 0.0
    assert backoff.delay(3, lambda: 0.5) == 2.0
    assert backoff.delay(3, lambda: 0.999) == pytest.approx(3.996)


def test_jittered_delays_are_spread_not_in_lock_step() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0)
    rng = random.Random(7)
    delays = [backoff.delay(5, rng.random) for _ in range(1000)]
    assert min(delays) >= 0.0 and max(delays) < 16.0
    assert len({round(d, 3) for d in delays}) > 900
    assert 7.0 < sum(delays) / len(delays) < 9.0  # mean of U(0, 16) is 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0.0}, "0 < initial <= maximum"),
        ({"initial": 5.0, "maximum": 1.0}, "0 < initial <= maximum"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        Backoff().ceiling(0)
