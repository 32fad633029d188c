"""Log configuration (docs/decisions.md, decision 10): one format for everything, structlog's,
readable on a terminal and JSON otherwise: the dialer's own loggers, the standard library's
(asyncio, aiohttp) and the HTTP access log (`dialer.access_log.AccessLog`) all go through the same
processors.

Logs go to stderr so a command's output on stdout (e.g. `--json`) stays machine-readable.
Context such as `call_id`, `lead_id`, `campaign_id` and `agent_id` is bound where it is known.

Secrets never reach a log whole (issue 10, item 11): API tokens (`dlr_...`), bearer
credentials and `access_token=`/`token=` query parameters (browsers' WebSockets pass their token
that way) are redacted in every field of every line, whoever wrote it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
REDACTED = "[redacted]"
_SECRET_PARAMETER = re.compile(r"(?i)\b((?:access_token|token|secret|password|api_key)=)[^&\s\"'#]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_API_TOKEN = re.compile(r"\bdlr_[A-Za-z0-9_\-]+")
_SECRET_KEYS = frozenset({"token", "secret", "password", "authorization", "access_token"})


def redact(text: str) -> str:
    """`text` with every token or credential it holds replaced by `[redacted]`."""
    if "=" not in text and "dlr_" not in text and "earer" not in text:
        return text  # the common case, cheaply
    text = _SECRET_PARAMETER.sub(lambda found: found.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda found: found.group(1) + REDACTED, text)
    return _API_TOKEN.sub(REDACTED, text)


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if depth < 3 and isinstance(value, dict):
        return {key: REDACTED if str(key).lower() in _SECRET_KEYS else _redacted(item, depth + 1)
                for key, item in value.items()}
    if depth < 3 and isinstance(value, list | tuple):
        return [_redacted(item, depth + 1) for item in value]
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no secret in any field (or in the rendered exception)."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS and key != "event":
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redacted(value)
    return event_dict


class _StderrHandler(logging.Handler):
    """Writes to the current `sys.stderr` (tests replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    del args
    return structlog.PrintLogger(sys.stderr)


# Commands that are services and log their progress; every other command prints only what it
# was asked for (and warnings), unless run with -v.
SERVICES = frozenset({"serve"})


def command_log_level(configured: str, command: str | None, verbose: bool) -> str:
    """The level a command logs at: as configured for a service or with -v, else warnings."""
    if verbose or command in SERVICES:
        return configured
    return configured if LEVELS.get(configured.lower(), logging.INFO) >= logging.WARNING else "warning"


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """`fmt`: `json`, `console`, or `auto` (console on a terminal, JSON otherwise)."""
    numeric = LEVELS.get(level.lower(), logging.INFO)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Looked up at each use, so a replaced sys.stderr (tests capture it) is honoured.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # The standard library's loggers (asyncio, aiohttp) in the same format, through the same
    # processors (the redaction included).
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
