"""aiohttp handler for `POST /v1/opt-outs {"phone": ..., "source": ..., "lead_id": ...}`.

The HTTP app mounts it: `app.router.add_post("/v1/opt-outs", make_opt_out_handler(store))`.
Errors are JSON: 400 when the body is not a JSON object, 422 naming the bad field, 503 when the
opt-out could not be stored (the caller must retry; nothing was half-done that matters).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from compliance_rules.optout import OptOutError, OptOutRecorder, opt_out
from compliance_rules.store import DncStore

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, error: str, message: str, **extra: str) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


def make_opt_out_handler(store: DncStore, recorder: OptOutRecorder | None = None) -> Handler:
    """A handler that records an opt-out effective for the very next gate decision."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "invalid_json", "the request body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "invalid_json", "the request body must be a JSON object")
        lead_id = body.get("lead_id")
        if lead_id is not None and not isinstance(lead_id, str):
            return _error(422, "invalid_field", "lead_id must be a string", field="lead_id", reason="invalid_type")
        try:
            result = await opt_out(store, body.get("phone"), body.get("source"), lead_id=lead_id, recorder=recorder)
        except OptOutError as error:
            return _error(422, "invalid_field", str(error), field=error.field, reason=error.reason)
        except Exception as error:  # Redis or the recorder failed: the client must retry
            log.error("opt_out_failed", error=repr(error))
            return _error(503, "opt_out_unavailable", "the opt-out could not be stored; retry")
        return web.json_response(result.to_json(), status=201)

    return handle
