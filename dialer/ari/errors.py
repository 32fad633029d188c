"""Errors of the ARI client, split by who is at fault.

- `AriRequestError` (and its subclasses by HTTP status): Asterisk understood the request and
  refused it; `status` and Asterisk's own `message` say why.
- `AriUnavailable`: Asterisk could not be reached (connection refused or reset, no answer in
  time). The request may or may not have taken effect when it was sent before the failure.
- `AriProtocolError`: Asterisk answered something the models cannot read (a bug on one side).
- `StaleGenerationError`, `ApplicationReplacedError`: about the event connection.
"""

from __future__ import annotations


class AriError(Exception):
    """Base of every error raised by `dialer.ari`."""


class AriRequestError(AriError):
    """Asterisk answered a REST request with an error status."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        super().__init__(f"{method} {path} -> {status}: {message}")


class BadRequest(AriRequestError):
    """400: a parameter is missing or invalid."""


class Unauthorized(AriRequestError):
    """401: the ARI user or password is wrong."""


class NotFound(AriRequestError):
    """404: the channel, bridge, recording or application does not exist (e.g. the channel is gone)."""


class Conflict(AriRequestError):
    """409: the id is already in use, or the resource is in a state that forbids the operation."""


class PreconditionFailed(AriRequestError):
    """412: the channel is in a state that does not allow this (e.g. not answered, not in Stasis)."""


class Unprocessable(AriRequestError):
    """422: a referenced resource (e.g. the endpoint or the other channel) does not exist."""


class ServerError(AriRequestError):
    """5xx: Asterisk failed internally."""


_BY_STATUS: dict[int, type[AriRequestError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: Unprocessable,
}


def request_error(method: str, path: str, status: int, message: str) -> AriRequestError:
    """The most specific `AriRequestError` for an HTTP status."""
    if status >= 500:
        return ServerError(method, path, status, message)
    return _BY_STATUS.get(status, AriRequestError)(method, path, status, message)


class AriUnavailable(AriError):
    """Asterisk cannot be reached: connection refused or reset, or no answer in time."""


class AriTimeout(AriUnavailable):
    """Asterisk did not answer within the request timeout."""


class AriProtocolError(AriError):
    """Asterisk answered with JSON the models cannot read."""


class StaleGenerationError(AriError):
    """A handle from an earlier event connection was used after a reconnect.

    Asterisk may have restarted in between, so ids remembered from before may now name
    something else (or nothing); the holder must re-read state instead of acting.
    """

    def __init__(self, held: int, current: int) -> None:
        self.held = held
        self.current = current
        super().__init__(f"ARI connection generation {held} is stale (current is {current})")


class ApplicationReplacedError(AriError):
    """Another WebSocket connection registered the same Stasis application name.

    We stop rather than reconnect and fight over the name; an operator must decide.
    """
