"""An outage of a dependency (PostgreSQL, Redis) said once when it starts and once when it ends,
not at every attempt (a tick a second would otherwise log a traceback a second)."""

from __future__ import annotations

import time
from typing import Any


class Outage:
    """Logs an outage once when it starts and once when it ends, not at every attempt."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.since: float | None = None
        self.failures = 0

    def failed(self, logger: Any, error: BaseException) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.time()
            logger.warning(self.event, error=repr(error))

    def recovered(self, logger: Any) -> None:
        if self.since is not None:
            logger.info(f"{self.event}_recovered", seconds=round(time.time() - self.since, 1), failures=self.failures)
            self.since, self.failures = None, 0
