"""Cursor pagination for every list: `?limit=` (1-1000, default 100) and `?cursor=` (opaque),
an answer with its items and `next` (the URL of the next page, or null at the end), and the
same link in a `Link: <...>; rel="next"` header.

A cursor holds the sort key of the last item served (the lists are read by keyset, in a stable
order: newest first, ties broken by id) and a digest of the filters it was made for, so a page
never skips or repeats an item however many rows arrive meanwhile, and a cursor used with other
filters is refused (400 `invalid_cursor`) rather than silently mixing two lists. It is base64url
JSON: opaque by contract, not secret (it holds nothing the previous page did not show).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from pydantic import Field

from dialer.api.http import ApiError
from dialer.api.schema import QueryModel

T = TypeVar("T")
DEFAULT_LIMIT = 100
MOST = 1000


class PageQuery(QueryModel):
    """The paging parameters every list takes."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MOST, description="items per page (1-1000)")
    cursor: str | None = Field(default=None, max_length=1000,
                               description="the `next` of the previous page, as given (opaque)")

    def filters(self) -> dict[str, Any]:
        """The filters a cursor is bound to: every parameter but the paging ones."""
        return {name: value for name, value in self.model_dump(mode="json").items()
                if name not in ("limit", "cursor") and value is not None}


def _digest(filters: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_cursor(key: tuple[datetime, str], filters: Mapping[str, Any]) -> str:
    raw = json.dumps({"at": key[0].isoformat(), "id": key[1], "f": _digest(filters)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(query: PageQuery) -> tuple[datetime, str] | None:
    """The sort key a cursor holds (None without one); 400 `invalid_cursor` for one this list
    did not give with these filters."""
    if query.cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(query.cursor + "=" * (-len(query.cursor) % 4))
        data = json.loads(raw)
        at = datetime.fromisoformat(data["at"])
        key = data["id"]
        if not isinstance(key, str) or at.tzinfo is None:
            raise ValueError(key)
        if data["f"] != _digest(query.filters()):
            raise ApiError(400, "invalid_cursor", "this cursor was given for other filters; start again without it",
                           field="cursor")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this list gave", field="cursor") from None
    return at, key


def next_link(request: web.Request, query: PageQuery, last: tuple[datetime, str]) -> str:
    """The URL (path and query) of the page after the one ending with `last`."""
    parameters = {**query.filters(), "limit": query.limit, "cursor": encode_cursor(last, query.filters())}
    return f"{request.path}?{urlencode({name: _plain(value) for name, value in parameters.items()})}"


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def page(request: web.Request, query: PageQuery, rows: Sequence[T], key: Any) -> tuple[list[T], str | None]:
    """The page's items (the store was asked for `limit + 1`) and the link to the next page."""
    items = list(rows[: query.limit])
    if len(rows) <= query.limit:
        return items, None
    return items, next_link(request, query, key(items[-1]))


def link_header(next_url: str | None) -> dict[str, str]:
    return {} if next_url is None else {"Link": f'<{next_url}>; rel="next"'}
