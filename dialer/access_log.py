"""aiohttp's access log through structlog (`dialer serve`): apart from `dialer.logs`, so that every
`dialer` command does not import aiohttp to configure its logging."""

from __future__ import annotations

import logging

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from dialer.logs import redact


class AccessLog(AbstractAccessLogger):
    """aiohttp's access log as one structlog line per request: method, path (the query string
    redacted), status, size, time and the client's address; never a token."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._log = structlog.get_logger("dialer.http")

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        query = redact(request.query_string) if request.query_string else None
        self._log.info("http_request", method=request.method, path=request.path, query=query,
                       status=response.status, bytes=response.body_length, ms=round(time * 1000, 1),
                       remote=request.remote)
