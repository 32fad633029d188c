"""Log configuration (docs/decisions.md, decision 10): structlog, readable on a terminal, JSON otherwise.

Logs go to stderr so a command's output on stdout (e.g. `--json`) stays machine-readable.
Context such as `call_id`, `lead_id`, `campaign_id` and `agent_id` is bound where it is known.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    del args
    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """`fmt`: `json`, `console`, or `auto` (console on a terminal, JSON otherwise)."""
    numeric = LEVELS.get(level.lower(), logging.INFO)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Looked up at each use, so a replaced sys.stderr (tests capture it) is honoured.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # The standard library's loggers (asyncio, aiohttp, the call machine) follow the same level.
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
