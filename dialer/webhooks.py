"""The webhook dispatcher: a background task of `dialer serve` that sends the queued deliveries
(`crm_bridge.webhooks`) to the CRMs' endpoints.

It never touches the call path: calls only write rows (the events come with them, in the
outbox's apply); this task reads the queue on its own small connection pool and sends with a
bounded number of requests in flight and a timeout on each, so a CRM endpoint that is down or slow
costs the calls nothing. A failed attempt is retried with exponential backoff (`first_retry`
doubling up to `most_retry`) until `give_up_after` (24 h) from the event's first delivery, then
parked: visible in the delivery log, sent again only by a replay.

Each delivery in flight is a task named `webhook-delivery-<id>`. At stop they are cancelled and
waited for before the HTTP session and the pool close. A delivery cut off mid-flight keeps its
lease (`claim` pushed its `next_attempt_at` out by `lease_seconds`) and no attempt is recorded, so
it is sent again once the lease runs out, by this process's next run or by another dispatcher: at
least once, never lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
import structlog

from crm_bridge import webhooks as queue
from crm_bridge.audit_chain import json_value
from dialer.metrics import Metrics
from dialer.tasks import start_task, stop_tasks

log = structlog.get_logger(__name__)


@dataclass
class WebhookOptions:
    public_url: str = "http://127.0.0.1:8080"  # this API's base, for recording links
    concurrency: int = 8
    per_endpoint: int = 4  # in flight to one subscription: a dead endpoint leaves slots to the others
    timeout: float = 10.0
    poll_interval: float = 0.5
    first_retry: float = 5.0
    most_retry: float = 3600.0
    give_up_after: float = 24 * 3600.0
    lease_seconds: float = 60.0


class WebhookDispatcher:
    def __init__(self, dsn: str, options: WebhookOptions | None = None, metrics: Metrics | None = None) -> None:
        self.dsn = dsn
        self.options = options or WebhookOptions()
        self.metrics = metrics
        self.sent = 0
        self.failed = 0
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the queue now (a replay was queued)."""
        self._wake.set()

    async def run(self) -> None:
        options = self.options
        semaphore = asyncio.Semaphore(options.concurrency)
        pool: asyncpg.Pool | None = None
        timeout = aiohttp.ClientTimeout(total=options.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while True:
                    try:
                        if pool is None:
                            pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=3, timeout=5.0,
                                                             command_timeout=10.0)
                        free = options.concurrency - len(self._in_flight)
                        if free > 0:
                            async with pool.acquire() as conn:
                                claimed = await queue.claim(conn, limit=free, lease_seconds=options.lease_seconds,
                                                            exclude=list(self._in_flight),
                                                            per_subscription=options.per_endpoint)
                            for delivery in claimed:
                                task = start_task(self._deliver(pool, session, semaphore, delivery),
                                                  f"webhook-delivery-{delivery.delivery_id}")
                                self._in_flight[delivery.delivery_id] = task
                                task.add_done_callback(self._done(delivery.delivery_id))
                    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                        log.warning("webhook_queue_unavailable", error=f"{type(error).__name__}: {error}")
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), options.poll_interval)
                    except TimeoutError:
                        pass
            finally:
                # Their requests end before the session and the pool close under them; each one
                # cut off stays leased and is sent again when the lease runs out (see above).
                await stop_tasks(list(self._in_flight.values()))
                if pool is not None:
                    await pool.close()

    def _done(self, delivery_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._in_flight.pop(delivery_id, None)

        return forget

    def body(self, delivery: queue.Claimed) -> bytes:
        data = dict(delivery.payload)
        base = self.options.public_url.rstrip("/")
        for name in ("recording_url", "url"):
            if isinstance(data.get(name), str) and data[name].startswith("/"):
                data[name] = base + data[name]
        message = {"id": delivery.event_id, "type": delivery.event_type,
                   "timestamp": json_value(delivery.occurred_at), "data": data}
        return json.dumps(message, separators=(",", ":")).encode()

    async def _deliver(self, pool: asyncpg.Pool, session: aiohttp.ClientSession, semaphore: asyncio.Semaphore,
                       delivery: queue.Claimed) -> None:
        async with semaphore:
            body = self.body(delivery)
            stamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": delivery.event_id,
                       "webhook-timestamp": str(stamp),
                       "webhook-signature": queue.signature_header(delivery.secrets, delivery.event_id, stamp, body),
                       "user-agent": "dialer-engine-webhooks/1"}
            attempted_at = datetime.now(UTC)
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            try:
                async with session.post(delivery.url, data=body, headers=headers, allow_redirects=False) as response:
                    status = response.status
                    await response.read()
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as failure:
                error = f"{type(failure).__name__}: {failure}"[:500] or type(failure).__name__
            duration_ms = int((time.monotonic() - started) * 1000)
            delivered = error is None
            next_at = None
            if not delivered:
                waited = (attempted_at - delivery.created_at).total_seconds()
                wait = queue.backoff(delivery.attempts + 1, first=self.options.first_retry,
                                     most=self.options.most_retry)
                if waited + wait.total_seconds() <= self.options.give_up_after:
                    next_at = attempted_at + wait
            try:
                async with pool.acquire() as conn:
                    await queue.record_attempt(conn, delivery.delivery_id, attempted_at=attempted_at,
                                               status_code=status, error=error, duration_ms=duration_ms,
                                               delivered=delivered, next_attempt_at=next_at)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as failure:
                # The lease runs out and the delivery is sent again: at least once.
                log.warning("webhook_result_not_stored", delivery_id=delivery.delivery_id, error=str(failure))
                return
            if self.metrics is not None:
                result = "delivered" if delivered else ("retry" if next_at is not None else "parked")
                self.metrics.webhook_attempts.inc(result=result)
                if delivered:
                    lag = (attempted_at - delivery.occurred_at).total_seconds()
                    self.metrics.webhook_lag_seconds.labels(event_type=delivery.event_type).observe(max(0.0, lag))
            if delivered:
                self.sent += 1
            else:
                self.failed += 1
                if next_at is None:
                    log.warning("webhook_parked", delivery_id=delivery.delivery_id, url=delivery.url, error=error)
            if delivered or next_at is not None:
                self._wake.set()  # the next event of this call may go now
