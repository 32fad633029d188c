"""Bearer-token verification with a short cache, so that PostgreSQL is not asked on every
request and a PostgreSQL outage does not lock every console out at once (issue 10, item 5).

- A verification (the token's row, or "no such live token") is reused for `FRESH_SECONDS`
  (10 s): **a token revoked in PostgreSQL stops working within 10 s** on every API process; in
  the process that revoked it (`forget`), at once.
- While PostgreSQL does not answer, a token verified less than `STALE_SECONDS` (120 s) ago is
  still honoured, so agents keep working through a short outage (no revocation can be written
  while PostgreSQL is down anyway; one written just before an outage may be honoured for up to
  10 s + the outage, at most 120 s). Any other token gets 503 `database_unavailable` with
  `Retry-After`, never 401 (the token may well be good) and never 500.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import ApiToken, CrmStore, hash_token

FRESH_SECONDS = 10.0
STALE_SECONDS = 120.0
CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class _Verified:
    token: ApiToken | None  # None: no live token has this secret
    at: float


class TokenVerifier:
    """`verify(secret)` -> the live token, None (unknown or revoked), or `DatabaseUnavailable`."""

    def __init__(
        self,
        store: CrmStore,
        *,
        fresh_seconds: float = FRESH_SECONDS,
        stale_seconds: float = STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._fresh = fresh_seconds
        self._stale = stale_seconds
        self._clock = clock
        # Keyed by the secret's sha256: the secret itself is never kept.
        self._cache: OrderedDict[str, _Verified] = OrderedDict()

    async def verify(self, secret: str) -> ApiToken | None:
        key = hash_token(secret)
        now = self._clock()
        known = self._cache.get(key)
        if known is not None and now - known.at < self._fresh:
            return known.token
        try:
            token = await self._store.authenticate(secret)
        except DatabaseUnavailable:
            if known is not None and known.token is not None and now - known.at < self._stale:
                return known.token
            raise
        self._remember(key, _Verified(token, now))
        return token

    def forget(self, token_id: str) -> None:
        """Drop a token's cached verification (this process revoked it)."""
        for key in [key for key, entry in self._cache.items() if entry.token and entry.token.token_id == token_id]:
            del self._cache[key]

    def _remember(self, key: str, entry: _Verified) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
