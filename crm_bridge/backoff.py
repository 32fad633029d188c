"""Retry delays after consecutive failures. Pure: the caller sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap and proportional jitter.

    `delay(1)` is about `initial`; each further failure multiplies by `factor` up to `maximum`.
    Jitter spreads controllers that lost the same server so they do not reconnect in step.
    """

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2
    random_fraction: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("Backoff needs 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("Backoff needs factor >= 1 and 0 <= jitter < 1")

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (failures >= 1)."""
        if failures < 1:
            return 0.0
        base = min(self.maximum, self.initial * self.factor ** min(failures - 1, 64))
        return base * (1 - self.jitter * self.random_fraction())
