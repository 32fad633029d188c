"""What every route module of the HTTP API shares (a leaf: it imports no route module).

Bearer-token auth with roles (`allow`); errors as RFC 9457 problem details
(`application/problem+json`: `type`, `title`, `status`, `detail`, `instance`, plus the API's
machine-readable `error` code, `message` and `field`) with a 4xx status for the caller's
mistakes and 503 with `Retry-After` when a dependency (PostgreSQL, Redis, the controller) is
down, never a traceback and never a 500 for a fault outside the process; the app's shared
dependencies (`DEPS`) and the request's token (`TOKEN`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Protocol, TypeVar, runtime_checkable

import asyncpg
import structlog
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError
from redis import exceptions as redis_errors

from compliance_rules.rules import GateOptions
from compliance_rules.ruleset import RuleBook
from compliance_rules.store import DncStore
from crm_bridge.outbox import OutboxError, RecordSink
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import ApiToken, CrmStore, TokenRole
from dialer.api.auth import TokenVerifier
from dialer.metrics import Metrics
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.errors import Refused
from dialer.runtime.live import CallControl
from dialer.runtime.optout import OptOuts

log = structlog.get_logger(__name__)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALL_ROLES = frozenset(TokenRole)
STAFF_ROLES = frozenset({TokenRole.CRM, TokenRole.SUPERVISOR, TokenRole.ADMIN})
PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:dialer-engine:problem:"
# How long a client should wait before retrying a 503, unless the fault knows better.
RETRY_AFTER_SECONDS = 5


class ReadinessCheck(Protocol):
    """One dependency `GET /v1/health/ready` reports on: `name`, and `check()` -> None when it is
    fine, or one sentence saying what is wrong (it must answer within a second or two)."""

    name: str

    async def check(self) -> str | None: ...


@dataclass(frozen=True)
class ApiDependencies:
    """What the routes of every slice share; each slice's own service is under its own app key."""

    store: CrmStore
    records: RecordSink
    dnc: DncStore
    agent_events: AgentEventHub = field(default_factory=AgentEventHub)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    readiness: Sequence[ReadinessCheck] = ()
    # The agency's time zone: where reports' days, weeks and months begin (IANA name).
    agency_timezone: str = "America/New_York"
    # The gate's agency-wide switches (`dialer.runtime.gate.gate_options`): callback times follow them.
    gate_options: GateOptions = field(default_factory=GateOptions)
    # The compliance gate's loaded rulebook (`ComplianceGate.rulebook`): callback times are the
    # gate's own windows, from the same copy of the rule data. None: the rule data failed to
    # load (the gate blocks every call), and callback times answer 503 rules_unavailable.
    rulebook: RuleBook | None = None

    @property
    def opt_outs(self) -> OptOuts:
        return OptOuts(self.dnc, self.records)


@dataclass(frozen=True)
class SignedIn:
    """A person's session, as the API sees it: the caller it acts as (`token`: role, agent) and
    the CSRF token every state-changing request of that session must carry."""

    session_id: str
    token: ApiToken
    csrf_token: str
    username: str
    expires_at: datetime


class SessionResolver(Protocol):
    """Turns a session cookie into the person signed in (`dialer.web.sessions`), or None."""

    async def resolve(self, secret: str) -> SignedIn | None: ...


@runtime_checkable
class WrapUps(Protocol):
    """Where agents' wrap-ups end: a disposition sent for a call ends its agent's wrap-up."""

    def disposed(self, agent_id: str, call_id: str) -> None: ...


class EveryWrapUp:
    """Several places wrap-ups end (the campaign runtime, click-to-call): each is told."""

    def __init__(self, targets: list[WrapUps]) -> None:
        self.targets = targets

    def disposed(self, agent_id: str, call_id: str) -> None:
        for target in self.targets:
            target.disposed(agent_id, call_id)


# A short title per code (RFC 9457 `title`: the same for every occurrence of a kind of problem).
TITLES = {
    "invalid_json": "The request body is not a JSON object",
    "invalid_field": "A field of the request is invalid",
    "unknown_field": "The request has a field this operation does not take",
    "invisible_characters": "A text holds invisible formatting characters",
    "unknown_parameter": "The request has a query parameter this operation does not take",
    "invalid_parameter": "A path or query parameter is invalid",
    "invalid_header": "A request header is invalid",
    "invalid_cursor": "The page cursor is not one this list gave",
    "unauthorized": "Authentication is needed",
    "forbidden": "This token may not do this",
    "compliance_blocked": "The compliance gate blocked this contact",
    "idempotency_key_reused": "This Idempotency-Key was used for another request",
    "idempotency_key_in_progress": "A request with this Idempotency-Key is still being processed",
    "database_unavailable": "The CRM database does not answer",
    "redis_unavailable": "Redis does not answer",
    "dependency_unavailable": "A service the dialer depends on does not answer",
    "controller_unavailable": "This API runs without that part of the dialer",
    "websocket_required": "This endpoint is a WebSocket",
    "request_too_large": "The request body is too large",
    "csrf_failed": "The request lacks this session's CSRF token",
    "sign_in_failed": "The user name or password is wrong",
    "sign_in_throttled": "Too many wrong passwords; signing in is paused",
    "not_signed_in": "This needs a signed-in person (a session), not a token",
    "internal_error": "Internal error",
}


def problem(
    request: web.Request | None,
    status: int,
    error: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """An `application/problem+json` response (RFC 9457) carrying the API's error code."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE + error,
        "title": TITLES.get(error) or _phrase(status),
        "status": status,
        "detail": message,
        # The path only: a query string may hold an access token.
        "instance": request.path if request is not None else "",
        "error": error,
        "message": message,
        **{name: value for name, value in extra.items() if value is not None},
    }
    all_headers = dict(headers or {})
    if status == 503:
        all_headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    return web.Response(
        text=json.dumps(body), status=status, content_type=PROBLEM_JSON, headers=all_headers
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ApiError(Exception):
    """A request we refuse, with its status and machine-readable code (and extras such as
    `field`, `reasons`); `retry_after` for a 503."""

    def __init__(self, status: int, error: str, message: str, *, retry_after: float | None = None,
                 **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.extra = extra
        self.retry_after = retry_after

    def response(self, request: web.Request | None = None) -> web.Response:
        headers = {"Retry-After": str(max(1, round(self.retry_after)))} if self.retry_after is not None else None
        if self.status == 401 and self.error == "unauthorized":
            # RFC 9110 11.6.1 / RFC 6750 3: a 401 names the scheme it wants (HTTP clients and
            # proxies look for it).
            headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="dialer"'}
        return problem(request, self.status, self.error, str(self), headers=headers, **self.extra)


def refused(error: Refused) -> ApiError:
    """The HTTP answer to a runtime's refusal."""
    return ApiError(error.status, error.error, str(error), field=error.field)


def unavailable(error: BaseException) -> ApiError | None:
    """The 503 for a dependency that does not answer, or None when `error` is no such fault."""
    if isinstance(error, DatabaseUnavailable):
        return ApiError(503, "database_unavailable", f"the CRM database does not answer: {error}",
                        retry_after=getattr(error, "retry_after", None))
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.CannotConnectNowError):
        return ApiError(503, "database_unavailable", "the CRM database does not answer; retry")
    if isinstance(error, asyncpg.UndefinedTableError):
        # A dialer started while PostgreSQL was down applies its migrations once it answers; a
        # request in between finds the tables missing for a moment.
        return ApiError(503, "database_migrating", "the CRM database is being migrated; retry")
    if isinstance(error, redis_errors.ConnectionError | redis_errors.TimeoutError | redis_errors.BusyLoadingError):
        return ApiError(503, "redis_unavailable", "Redis does not answer; retry")
    if isinstance(error, OutboxError):
        # The local outbox could not keep the write (its disk is full): nothing was accepted.
        return ApiError(503, "outbox_unavailable", "the dialer cannot keep the write durably now; retry")
    if isinstance(error, OSError | TimeoutError):
        return ApiError(503, "dependency_unavailable", "a service the dialer depends on does not answer; retry")
    return None


def as_error(error: BaseException) -> ApiError | None:
    """The API's answer to an exception a route let through, or None for a bug (500)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, Refused):
        return refused(error)
    down = unavailable(error)
    if down is not None:
        return down
    if isinstance(error, asyncpg.DataError):
        # PostgreSQL refused a value (a NUL, an untranslatable character...): the input's fault.
        return ApiError(400, "invalid_parameter", "a value of the request cannot be stored or searched")
    if isinstance(error, RecursionError | UnicodeError):
        return ApiError(400, "invalid_json", "the request cannot be read (too deeply nested or not valid text)")
    if isinstance(error, RequestPayloadError):
        # aiohttp could not read the body it was sent: most often one that is not compressed as
        # its Content-Encoding says (a gzip header on plain JSON). The sender's fault, not ours.
        if isinstance(error.__cause__, ContentEncodingError):
            encoding = _encoding_named(error.__cause__)
            return ApiError(400, "invalid_header", f"the body cannot be decoded as its Content-Encoding "
                            f"({encoding}) says", field="Content-Encoding")
        return ApiError(400, "invalid_json", "the request body cannot be read (its transfer was malformed)")
    return None


def _encoding_named(error: ContentEncodingError) -> str:
    """The encoding named in aiohttp's message ("Can not decode content-encoding: gzip")."""
    return str(error.message).rpartition(":")[2].strip() or "unknown"


DEPS: web.AppKey[ApiDependencies] = web.AppKey("deps", ApiDependencies)
TOKENS: web.AppKey[TokenVerifier] = web.AppKey("tokens", TokenVerifier)
WRAP_UPS: web.AppKey[WrapUps | None] = web.AppKey("wrap_ups", WrapUps)
# The slices whose calls `POST /v1/calls/{id}/hangup` can end.
CALL_CONTROLS: web.AppKey[list[CallControl]] = web.AppKey("call_controls", list)
TOKEN: web.RequestKey[ApiToken] = web.RequestKey("token", ApiToken)
# Set when the caller is a person signed in with a session cookie (not a bearer token).
SESSION: web.RequestKey[SignedIn] = web.RequestKey("session", SignedIn)
SESSIONS: web.AppKey[SessionResolver | None] = web.AppKey("sessions", SessionResolver)
SESSION_COOKIE = "dialer_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# /metrics carries aggregates only (no PHI), for a Prometheus server on the same network.
# Kept for modules that ask; the routes of the registry declared with `roles=None` are public too.
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/health/live", "/v1/health/ready", "/v1/openapi.json",
                          "/v1/asyncapi.json", "/metrics"})
_ROLES: dict[Handler, frozenset[TokenRole]] = {}
_PUBLIC: set[Handler] = set()


def public(handler: Handler) -> Handler:
    """A handler that needs no token (health, metrics, the documents, signed webhooks)."""
    _PUBLIC.add(handler)
    return handler


def allow(*roles: TokenRole) -> Callable[[Handler], Handler]:
    """Which token roles may call a handler (agents are further limited to their own calls)."""

    def mark(handler: Handler) -> Handler:
        _ROLES[handler] = frozenset(roles)
        return handler

    return mark


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


@web.middleware
async def errors_as_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return problem(request, error.status, _HTTP_CODES.get(error.status, "http_error"), error.reason,
                       headers=headers)
    except Exception as error:
        answer = as_error(error)
        if answer is not None and isinstance(error, RequestPayloadError):
            return await _answer_and_close(request, answer.response(request))
        if answer is not None:
            return answer.response(request)
        log.exception("api_internal_error", path=request.path, method=request.method)
        return problem(request, 500, "internal_error", "internal error; logged")


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Answer a request whose body could not be read, then close its connection: nothing after
    that body can be read either. Left open, aiohttp tries to drain the body after the answer,
    fails the same way, logs it as an unhandled exception and drops the connection, which the
    client may already have taken back for its next request."""
    response.force_close()  # `Connection: close`: the client does not reuse it
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()  # the answer is written; the transport flushes it, then closes
    return response


errors_as_json = errors_as_problems  # the name `dialer.app` used before problem details


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (request.path in PUBLIC_PATHS or request.match_info.http_exception is not None
            or request.match_info.route.handler in _PUBLIC):
        return await handler(request)  # public, or no such route: 404/405 come out as problems
    header = request.headers.get("Authorization", "")
    if not header and SESSION_COOKIE in request.cookies and request.app.get(SESSIONS) is not None:
        return await _session_auth(request, handler)
    if not header and request.headers.get("Upgrade", "").lower() == "websocket" and "access_token" in request.query:
        # Browsers cannot set headers on a WebSocket; the console passes its token in the query
        # (the access log never shows it: dialer.logs redacts it).
        header = f"Bearer {request.query['access_token']}"
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer TOKEN'")
    if len(secret) > 200 or not secret.isprintable() or not secret.isascii():
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    token = await request.app[TOKENS].verify(secret)
    if token is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    roles = _ROLES.get(request.match_info.route.handler, frozenset())
    if token.role not in roles:
        article = "an" if token.role.value[0] in "aeiou" else "a"  # "an agent token", "an admin token"
        raise ApiError(403, "forbidden", f"{article} {token.role.value} token may not call this endpoint")
    request[TOKEN] = token
    return await handler(request)


async def _session_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A person's browser: the session cookie (HttpOnly, SameSite=Strict) names the caller; every
    state-changing request must also carry the session's CSRF token in `X-CSRF-Token`, and a
    request from another site's page (its `Origin`) is refused."""
    resolver = request.app[SESSIONS]
    assert resolver is not None
    signed_in = await resolver.resolve(request.cookies[SESSION_COOKIE])
    if signed_in is None:
        raise ApiError(401, "unauthorized", "the session has ended: sign in again")
    origin = request.headers.get("Origin")
    if origin is not None and origin.partition("://")[2] != request.host:
        raise ApiError(403, "csrf_failed", "a request from another site's page")
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), signed_in.csrf_token.encode()):
        raise ApiError(403, "csrf_failed", f"send the session's CSRF token in {CSRF_HEADER}", field=CSRF_HEADER)
    token = signed_in.token
    roles = _ROLES.get(request.match_info.route.handler, frozenset())
    if token.role not in roles:
        raise ApiError(403, "forbidden", f"a {token.role.value} may not call this endpoint")
    request[TOKEN] = token
    request[SESSION] = signed_in
    return await handler(request)


def service(request: web.Request, key: web.AppKey[T | None], what: str) -> T:
    """A slice's service from the app, or 503 when this API runs without it."""
    found = request.app.get(key)
    if found is None:
        raise ApiError(503, "controller_unavailable", f"this API runs without the {what}")
    return found


def own_agent(request: web.Request, agent_id: str, what: str = "act only for its own agent") -> str:
    """`agent_id`, when the token may act for it (agents: only themselves)."""
    token = request[TOKEN]
    if token.role is TokenRole.AGENT and token.agent_id != agent_id:
        raise ApiError(403, "forbidden", f"an agent token may {what}", field="agent_id")
    return agent_id
