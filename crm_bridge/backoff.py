"""Reconnect and retry delays (ARI reconnects and retries, outbox deliveries): exponential backoff
with full jitter, as a small pure object. The caller sleeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt `n` (1-based) is uniform in [0, min(maximum, initial * multiplier**(n-1))].

    "Full jitter" spreads the reconnects of many clients after a shared outage (e.g. an
    Asterisk restart) instead of having them all retry in lock step.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"Backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if self.multiplier < 1:
            raise ValueError(f"Backoff multiplier must be at least 1, got {self.multiplier}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt `attempt` (1-based) may wait."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        # Cap the exponent so that a long outage cannot overflow the float.
        exponent = min(attempt - 1, 64)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int, unit_random: Callable[[], float]) -> float:
        """The delay before attempt `attempt`; `unit_random` returns a float in [0, 1)."""
        return self.ceiling(attempt) * unit_random()
