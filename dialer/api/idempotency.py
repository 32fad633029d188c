"""`Idempotency-Key` on the routes that create something (issue 10, item 6): a client that did
not see the answer (a timeout, a dropped connection) sends the same request again with the same
key and gets the first answer, while nothing is done twice.

- The key is scoped to the token and the operation, and stored in PostgreSQL with a
  fingerprint of the request (sha256 of method, path and the validated body in a canonical
  form: fields in any order, phone numbers as E.164, a web lead as the intake reads it) and, once the route answered, that answer: a retry gets **the same status and body**
  (plus `Idempotent-Replayed: true`), a 403 `compliance_blocked` or a 422 as much as a 202.
- The same key with another request: 422 `idempotency_key_reused`.
- Concurrent duplicates wait for the first: one lock per key in this process (so 50 requests
  at once make one call and 49 replays), and across processes the claim in PostgreSQL (a
  request still in progress elsewhere is waited for, up to `WAIT_SECONDS`, then 409
  `idempotency_key_in_progress` with `Retry-After`).
- A 5xx is not kept: the claim is released, so a retry runs again (nothing was done).
- A claim left by a process that died before answering is taken over after `LEASE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import structlog
from aiohttp import web
from pydantic import BaseModel

from crm_bridge.store import CrmStore
from dialer.api.http import DEPS, TOKEN, ApiError, as_error
from dialer.api.schema import RequestModel

log = structlog.get_logger(__name__)

KEY_MAX = 200
LEASE_SECONDS = 60.0
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.1


class KeyedLocks:
    """Serialises work per key without serialising unrelated keys.

    Keys are taken in sorted order so two holders sharing two keys cannot deadlock; a key's
    lock is dropped when nobody holds or waits for it.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def holding(self, keys: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                await self._locks[key].acquire()
                taken.append(self._locks[key])
            yield
        finally:
            for lock in reversed(taken):
                lock.release()
            for key in ordered:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


IDEMPOTENCY_LOCKS: web.AppKey[KeyedLocks] = web.AppKey("idempotency_locks", KeyedLocks)


def fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """The request as a key's first use is remembered: the same fields in any order match, and
    values compared as the route will read them (a phone number in any format is its E.164,
    `RequestModel.idempotency_form`), so a client that rewrites a number between tries is not
    told the key was reused."""
    form = body.idempotency_form() if isinstance(body, RequestModel) else \
        None if body is None else body.model_dump(mode="json")
    canonical = "" if form is None else json.dumps(form, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


async def idempotent(
    request: web.Request, operation_id: str, body: BaseModel | None,
    run: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Run the route once per `Idempotency-Key` (or as is without one)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return await run()
    if not 1 <= len(key) <= KEY_MAX or not key.isascii() or not key.isprintable() or not key.strip():
        raise ApiError(400, "invalid_header", f"Idempotency-Key must be 1-{KEY_MAX} printable ASCII characters",
                       field="Idempotency-Key")
    store = request.app[DEPS].store
    scope = f"{request[TOKEN].token_id}:{operation_id}:{key}"
    print_ = fingerprint(request.method, request.path, body)
    async with request.app[IDEMPOTENCY_LOCKS].holding([scope]):
        waited = 0.0
        while True:
            stored = await store.claim_request(scope, print_, lease_seconds=LEASE_SECONDS)
            if stored.claimed:
                break
            if stored.fingerprint != print_:
                raise ApiError(422, "idempotency_key_reused",
                               "this Idempotency-Key was used for another request; use a new key",
                               field="Idempotency-Key")
            if stored.status is not None:
                return _replay(stored.status, stored.content_type, stored.location, stored.body or b"")
            if waited >= WAIT_SECONDS:  # still in progress in another process
                raise ApiError(409, "idempotency_key_in_progress",
                               "a request with this Idempotency-Key is still being processed; retry",
                               field="Idempotency-Key", retry_after=1)
            await asyncio.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
        response = await _answer(request, run, scope)
        if response.status >= 500 or not isinstance(response, web.Response):
            await _release(store, scope)
            return response
        try:
            await store.complete_request(scope, status=response.status, content_type=response.content_type,
                                         location=response.headers.get("Location"), body=_body_bytes(response))
        except Exception as error:  # the answer stands; a retry within the lease waits, then runs again
            log.warning("idempotency_answer_not_kept", operation=operation_id, error=repr(error))
        return response


async def _answer(request: web.Request, run: Callable[[], Awaitable[web.StreamResponse]],
                  scope: str) -> web.StreamResponse:
    """The route's answer, its refusals included (they are kept and replayed too)."""
    try:
        return await run()
    except Exception as error:
        answer = as_error(error)
        if answer is None:
            await _release(request.app[DEPS].store, scope)
            raise
        return answer.response(request)
    except BaseException:
        await _release(request.app[DEPS].store, scope)
        raise


async def _release(store: CrmStore, scope: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(store.release_request(scope))


def _body_bytes(response: web.Response) -> bytes:
    body = response.body
    return body if isinstance(body, bytes) else (response.text or "").encode()


def _replay(status: int, content_type: str | None, location: str | None, body: bytes) -> web.Response:
    headers = {"Idempotent-Replayed": "true"}
    if location is not None:
        headers["Location"] = location
    if status == 503:
        headers["Retry-After"] = "5"
    return web.Response(body=body, status=status, content_type=content_type or "application/json",
                        headers=headers)
