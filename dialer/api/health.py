"""Health and metrics, for load balancers, orchestrators and Prometheus (no token, no PHI):

- `GET /v1/health/live`: the process answers (restart it when this fails).
- `GET /v1/health/ready`: whether it can do its work now: ARI connected, Redis and PostgreSQL
  answering, the outbox's backlog, and what else the dialer registers (recordings waiting to
  be archived), each with a reason when it is not fine; 503 (with `Retry-After`) when one is not.
- `GET /v1/health`: the older liveness route, kept.
- `GET /metrics`: Prometheus exposition (`dialer.metrics`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiohttp import web
from pydantic import Field
from redis import exceptions as redis_errors

from compliance_rules.store import DncStore
from crm_bridge.outbox import RecordSink
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import CrmStore
from dialer.api.http import DEPS, RETRY_AFTER_SECONDS, ReadinessCheck
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import ResponseModel

routes = RouteTable("health")
CHECK_SECONDS = 2.0
# A backlog this deep means PostgreSQL is not keeping up (or is down): not ready for more work.
OUTBOX_BACKLOG_LIMIT = 10_000


class Status(ResponseModel):
    status: str = Field(description="ok")


class Check(ResponseModel):
    name: str
    ok: bool
    detail: str | None = Field(description="why it is not fine (null when it is)")


class Readiness(ResponseModel):
    status: str = Field(description="ready or not_ready")
    checks: list[Check]


class PostgresCheck:
    name = "postgresql"

    def __init__(self, store: CrmStore) -> None:
        self.store = store

    async def check(self) -> str | None:
        try:
            await self.store.ping()
        except DatabaseUnavailable as error:
            return f"PostgreSQL does not answer ({error})"
        return None


class RedisCheck:
    name = "redis"

    def __init__(self, dnc: DncStore) -> None:
        self.dnc = dnc

    async def check(self) -> str | None:
        try:
            await self.dnc.redis.ping()
        except (redis_errors.RedisError, OSError) as error:
            return f"Redis does not answer ({type(error).__name__})"
        return None


class OutboxCheck:
    name = "outbox"

    def __init__(self, records: RecordSink, limit: int = OUTBOX_BACKLOG_LIMIT) -> None:
        self.records = records
        self.limit = limit

    async def check(self) -> str | None:
        stats = getattr(self.records, "stats", None)
        if stats is None:
            return None
        pending = int(stats().pending)
        if pending >= self.limit:
            return f"{pending} CRM records wait to reach PostgreSQL (limit {self.limit})"
        return None


class AriCheck:
    """ARI's event WebSocket: without it no call can be placed or followed."""

    name = "ari"

    def __init__(self, connected: Callable[[], bool]) -> None:
        self.connected = connected

    async def check(self) -> str | None:
        return None if self.connected() else "the ARI event WebSocket to Asterisk is not connected"


class RecordingsCheck:
    """Recordings the last sweep could not archive (archive disk full, key missing, PostgreSQL or
    the outbox refusing the row): they wait in Asterisk's spool and are retried at every sweep,
    but an operator must know, since 100 % of calls must reach the archive."""

    name = "recordings"

    def __init__(self, pending: Callable[[], int]) -> None:
        self.pending = pending

    async def check(self) -> str | None:
        pending = self.pending()
        if pending:
            return f"{pending} recordings wait in Asterisk's spool to be archived (retried at every sweep)"
        return None


class StartCheck:
    """The start's own work on the CRM: migrations (when PostgreSQL was down at start), the rows a
    previous run left open, the opt-out list rebuilt in Redis. Until it is done the dialer takes
    calls, but reports on the CRM may miss rows and numbers opted out may not be in Redis yet."""

    name = "start"

    def __init__(self, finished: Callable[[], bool]) -> None:
        self.finished = finished

    async def check(self) -> str | None:
        if self.finished():
            return None
        return "waiting for PostgreSQL and Redis to apply migrations, close what the last run left open and restore opt-outs"


async def _run(check: ReadinessCheck) -> Check:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            detail = await check.check()
    except TimeoutError:
        detail = f"no answer within {CHECK_SECONDS:g} s"
    except Exception as error:  # a probe that breaks is a reason, never a 500
        detail = f"check failed: {type(error).__name__}"
    return Check(name=check.name, ok=detail is None, detail=detail)


def checks_of(request: web.Request) -> Sequence[ReadinessCheck]:
    deps = request.app[DEPS]
    return [PostgresCheck(deps.store), RedisCheck(deps.dnc), OutboxCheck(deps.records), *deps.readiness]


@routes.get("/v1/health", "health", "Liveness (kept; see /v1/health/live)", roles=None,
            responses={200: Answer(Status, "the API answers")})
async def health(request: web.Request) -> Reply:
    del request
    return Reply(Status(status="ok"))


@routes.get("/v1/health/live", "healthLive", "Liveness: the process answers", roles=None,
            responses={200: Answer(Status, "the process answers")})
async def live(request: web.Request) -> Reply:
    del request
    return Reply(Status(status="ok"))


@routes.get("/v1/health/ready", "healthReady",
            "Readiness: ARI connected, Redis and PostgreSQL answering, outbox backlog, and more, with reasons",
            roles=None, responses={200: Answer(Readiness, "ready for work"),
                                   503: Answer(Readiness, "not ready; `checks` say why",
                                               headers={"Retry-After": "seconds to wait before asking again"})})
async def ready(request: web.Request) -> Reply:
    results = await asyncio.gather(*(_run(check) for check in checks_of(request)))
    if all(result.ok for result in results):
        return Reply(Readiness(status="ready", checks=list(results)))
    return Reply(Readiness(status="not_ready", checks=list(results)), status=503,
                 headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@routes.get("/metrics", "metrics", "Prometheus metrics (aggregates only: calls, gate decisions, outbox, campaigns, "
            "latency histograms, the process)", roles=None, tags=("health",),
            responses={200: Answer(None, "Prometheus text exposition format", content_type="text/plain")})
async def metrics(request: web.Request) -> web.StreamResponse:
    body, content_type = request.app[DEPS].metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
