"""Per-sender-number rate limits. Pure.

Carriers meter application-to-person texts per sending number (a 10DLC long code is commonly
held to about one segment per second; toll-free and short codes allow more), and drop or
filter what goes faster. Each sender number gets a slot every `1 / rate` seconds per segment;
a text reserves its slots when it asks and goes at the first one. Per controller: several
controllers sharing one number need the limit divided between them.
"""

from __future__ import annotations


class SenderPacer:
    def __init__(self, segments_per_second: float) -> None:
        if segments_per_second <= 0:
            raise ValueError("segments_per_second must be positive")
        self.interval = 1.0 / segments_per_second
        self._free_at: dict[str, float] = {}

    def reserve(self, sender: str, now: float, segments: int = 1) -> float:
        """When a text of `segments` from `sender` may go (now or later); its slots are taken.
        `now` is on a clock that never steps back (the runtime gives `time.monotonic()`)."""
        at = max(now, self._free_at.get(sender, now))
        self._free_at[sender] = at + self.interval * max(1, segments)
        return at

    def forget_idle(self, now: float) -> None:
        """Drop senders with no slot reserved in the future."""
        for sender in [s for s, free in self._free_at.items() if free <= now]:
            del self._free_at[sender]
