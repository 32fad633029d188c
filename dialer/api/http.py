"""What every route module of the HTTP API shares (a leaf: it imports no route module).

Bearer-token auth with roles (`allow`), errors as JSON `{"error": CODE, "message": ...}` (plus
`field` for a bad field) with a 4xx status for the caller's mistakes and 503 when a dependency
(PostgreSQL, Redis) is down, never a traceback; JSON body and query helpers; the app's shared
dependencies (`DEPS`) and the request's token (`TOKEN`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol, TypeVar

import structlog
from aiohttp import web

from compliance_rules.store import DncStore
from crm_bridge.outbox import RecordSink
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import ApiToken, CrmStore, TokenRole
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


@dataclass(frozen=True)
class ApiDependencies:
    """What the routes of every slice share; each slice's own service is under its own app key."""

    store: CrmStore
    records: RecordSink
    dnc: DncStore
    agent_events: AgentEventHub = field(default_factory=AgentEventHub)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def opt_outs(self) -> OptOuts:
        return OptOuts(self.dnc, self.records)


class WrapUps(Protocol):
    """Where agents' wrap-ups end: a disposition sent for a call ends its agent's wrap-up."""

    def disposed(self, agent_id: str, call_id: str) -> None: ...


class ApiError(Exception):
    """A request we refuse, with its status and machine-readable code."""

    def __init__(self, status: int, error: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "message": str(self), **self.extra}, status=self.status)


def refused(error: Refused) -> ApiError:
    """The HTTP answer to a runtime's refusal."""
    extra = {"field": error.field} if error.field else {}
    return ApiError(error.status, error.error, str(error), **extra)


DEPS: web.AppKey[ApiDependencies] = web.AppKey("deps", ApiDependencies)
WRAP_UPS: web.AppKey[WrapUps | None] = web.AppKey("wrap_ups", WrapUps)
# The slices whose calls `POST /v1/calls/{id}/hangup` can end.
CALL_CONTROLS: web.AppKey[list[CallControl]] = web.AppKey("call_controls", list)
TOKEN: web.RequestKey[ApiToken] = web.RequestKey("token", ApiToken)
# /metrics carries aggregates only (no PHI), for a Prometheus server on the same network.
# The messaging provider's webhooks authenticate by their signature (dialer/texting/api.py).
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/openapi.json", "/metrics", "/v1/texting/provider/inbound",
                          "/v1/texting/provider/status"})
_ROLES: dict[Handler, frozenset[TokenRole]] = {}


def allow(*roles: TokenRole) -> Callable[[Handler], Handler]:
    """Which token roles may call a handler (agents are further limited to their own calls)."""

    def mark(handler: Handler) -> Handler:
        _ROLES[handler] = frozenset(roles)
        return handler

    return mark


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except Refused as error:
        return refused(error).response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(error.status, "http_error")
        return web.json_response({"error": code, "message": error.reason}, status=error.status)
    except DatabaseUnavailable as error:
        return ApiError(503, "database_unavailable", f"the CRM database does not answer: {error}").response()
    except Exception:
        log.exception("api_internal_error", path=request.path, method=request.method)
        return web.json_response({"error": "internal_error", "message": "internal error; logged"}, status=500)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)  # public, or no such route: 404/405 come out as JSON
    header = request.headers.get("Authorization", "")
    if not header and request.headers.get("Upgrade", "").lower() == "websocket" and "access_token" in request.query:
        # Browsers cannot set headers on a WebSocket; the console passes its token in the query.
        header = f"Bearer {request.query['access_token']}"
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer TOKEN'")
    token = await request.app[DEPS].store.authenticate(secret.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    roles = _ROLES.get(request.match_info.route.handler, frozenset())
    if token.role not in roles:
        raise ApiError(403, "forbidden", f"a {token.role.value} token may not call this endpoint")
    request[TOKEN] = token
    return await handler(request)


# ---- request and response helpers ------------------------------------------------------------
def json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    return value


async def json_object(
    request: web.Request, *, allowed: Collection[str] | None = None, optional: bool = False
) -> dict[str, Any]:
    """The request's JSON object body (400 otherwise); `allowed` refuses other fields (422 naming
    one); `optional` takes a missing body as `{}`."""
    if optional and not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ApiError(422, "unknown_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    return body


def timestamp(value: object, name: str) -> datetime | None:
    """An ISO-8601 timestamp with a time zone (422 naming the field otherwise)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{name} must be an ISO-8601 timestamp", field=name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_field", f"{name} must be an ISO-8601 timestamp", field=name) from None
    if parsed.tzinfo is None:
        raise ApiError(422, "invalid_field", f"{name} needs a time zone (e.g. Z)", field=name)
    return parsed


def optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(422, "invalid_field", f"{name} must be a string", field=name)
    return value


def only_parameters(request: web.Request, *names: str) -> None:
    """400 naming the first query parameter that is not one of `names`."""
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown query parameter {unknown[0]!r}", field=unknown[0])


def limit_parameter(request: web.Request, *, default: int = 100, most: int = 1000) -> int:
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        raise ApiError(422, "invalid_field", "limit must be a whole number", field="limit") from None
    if not 1 <= limit <= most:
        raise ApiError(422, "invalid_field", f"limit must be between 1 and {most}", field="limit")
    return limit


def service(request: web.Request, key: web.AppKey[T | None], what: str) -> T:
    """A slice's service from the app, or 503 when this API runs without it."""
    found = request.app.get(key)
    if found is None:
        raise ApiError(503, "controller_unavailable", f"this API runs without the {what}")
    return found
