"""The typed bodies of the HTTP API: the base classes every request, query and response model
derives from, the text types that refuse what must never enter a record, and the bodies that
several route modules share (problems, pages).

Requests are strict (no silent coercion: `"7"` is not a number, `7` is not a string) and refuse
unknown fields; responses describe exactly what is sent. Every time in a body is ISO-8601 UTC
(`2026-11-24T17:00:00Z`). The OpenAPI document is generated from these models
(`dialer.api.openapi`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Any, ClassVar, get_args, get_origin, overload

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic_core import PydanticCustomError

from compliance_rules.numbers import e164_spelling, parse_number
from crm_bridge.visible_text import INVISIBLE_CHARACTERS, invisible_character, invisible_message

# Characters no name, id or short text may hold: C0 and C1 controls (CR/LF would add SIP headers
# where a name becomes a caller name; NUL is refused by PostgreSQL), DEL, and the line and
# paragraph separators U+2028/U+2029 (line breaks to many parsers).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Free text (notes) may hold tabs and line breaks, nothing else of the above.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _no_surrogates(value: str) -> None:
    # A lone surrogate cannot be encoded as UTF-8, so it can never be stored (issue 10, item 9).
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("must not contain lone surrogates (not valid Unicode text)")


def _single_line(value: str) -> str:
    _no_surrogates(value)
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks, tabs, NUL...)")
    return value


def _visible(value: str) -> str:
    # Names, ids and one-line texts are shown on agents' and supervisors' screens: no direction
    # override or zero-width character may change how they read (`crm_bridge.visible_text`).
    # Its own error type, so the 422 says `invisible_characters` (`dialer.api.routes`).
    character = invisible_character(value)
    if character is not None:
        raise PydanticCustomError(INVISIBLE_CHARACTERS, invisible_message(character))
    return value


def _free_text(value: str) -> str:
    _no_surrogates(value)
    if _TEXT_CONTROL.search(value):
        raise ValueError("must not contain control characters other than tabs and line breaks")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# One line of text: ids, names, codes, reasons (shown as they are: no invisible formatting).
Line = Annotated[str, Field(max_length=200), AfterValidator(_single_line), AfterValidator(_visible)]
Id = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line), AfterValidator(_visible),
               AfterValidator(_not_blank)]


def _dialable_e164(value: str) -> str:
    number = parse_number(value).e164
    if number is None:
        raise ValueError("is not a dialable US number")
    return number


class SameNumber:
    """Marks a text field that holds a phone number in any format: `Idempotency-Key` compares the
    request with it written as E.164 (`RequestModel.idempotency_form`)."""


# A phone number in a request body, as sent (the route says why a number is refused); the same
# number written another way is the same request for `Idempotency-Key`.
PhoneText = Annotated[str, Field(max_length=200), AfterValidator(_single_line), SameNumber()]
# A US number in any format, normalised to E.164 (query filters: `?phone=(212) 555-0100`).
UsPhone = Annotated[str, Field(max_length=200), AfterValidator(_single_line), AfterValidator(_dialable_e164)]
# The name of an agent, a campaign, a list, a lead, a template...: the one place names are checked.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line), AfterValidator(_visible),
                 AfterValidator(_not_blank)]
# Notes and other free text: line breaks allowed, no other control character.
Text = Annotated[str, Field(max_length=5000), AfterValidator(_free_text)]
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _plausible_time(value: datetime) -> datetime:
    # Year 1 or 9999 with an offset cannot even be turned into UTC or a lead's local time
    # (OverflowError, a 500 deep in the calling-window rules): such a time is a client's mistake.
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be between 1900 and 9000") from None
    if not _EARLIEST <= utc < _LATEST:
        raise ValueError("must be between 1900 and 9000")
    return value


def _plausible_day(value: date) -> date:
    # A day near year 9999 overflows when its midnight is turned into UTC (a 500): refused.
    if not _EARLIEST.date() <= value < _LATEST.date():
        raise ValueError("must be between 1900 and 9000")
    return value


# A day in a query or body (YYYY-MM-DD), within the years a time may be in.
Day = Annotated[date, AfterValidator(_plausible_day)]
# A time in a body: an ISO-8601 timestamp with its offset in, always UTC `...Z` out.
UtcTime = Annotated[AwareDatetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]
# A time a client sends (request bodies, query filters): also within 1900-9000. Answers use
# `UtcTime` unbounded, so a row stored before this check is still shown rather than a 500.
UtcTimeIn = Annotated[UtcTime, AfterValidator(_plausible_time)]


@overload
def utc_from_epoch(seconds: float) -> datetime: ...


@overload
def utc_from_epoch(seconds: None) -> None: ...


def utc_from_epoch(seconds: float | None) -> datetime | None:
    """An epoch time (as the pure machines keep it) as an aware UTC datetime, for a body."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class RequestModel(BaseModel):
    """A JSON request body: strict types, unknown fields refused (422 `unknown_field`)."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=False)

    def idempotency_form(self) -> dict[str, Any]:
        """The request as an `Idempotency-Key` remembers it: the validated fields, each phone
        number (`PhoneText`) written as E.164, so two spellings of one request are one request.
        A model whose route normalises more (a web lead's e-mail, state) says so by overriding."""
        form = self.model_dump(mode="json")
        for name in _number_fields(type(self)):
            value = form.get(name)
            if isinstance(value, str):
                form[name] = e164_spelling(value) or value
        return form


@cache
def _number_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name, info in model.model_fields.items()
                 if any(isinstance(item, SameNumber) for item in info.metadata) or _marked(info.annotation))


def _marked(annotation: object) -> bool:
    """Whether a type (`PhoneText | None` too) carries the `SameNumber` mark."""
    if get_origin(annotation) is Annotated:
        return any(isinstance(item, SameNumber) for item in getattr(annotation, "__metadata__", ()))
    return any(_marked(argument) for argument in get_args(annotation))


class QueryModel(BaseModel):
    """A route's query parameters (strings in, parsed by their type).

    `unknown_parameter` is the answer to a parameter the route does not take: most routes say
    400 `unknown_parameter`; the recordings list keeps the 422 `unknown_field` it has always said.
    """

    model_config = ConfigDict(extra="forbid")
    unknown_parameter: ClassVar[tuple[int, str]] = (400, "unknown_parameter")


class ResponseModel(BaseModel):
    """A JSON response body."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error, as RFC 9457 `application/problem+json`, with the API's machine-readable code.

    `error` is the stable code clients branch on (also the last part of `type`); `message` is the
    same text as `detail` (kept for clients written before problem details).
    """

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(description="URI naming the kind of problem: `urn:dialer-engine:problem:<error>`")
    title: str = Field(description="short summary of the kind of problem (the same for every occurrence)")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong this time, for a person")
    instance: str = Field(description="the request path that had the problem")
    error: str = Field(description="stable machine-readable code")
    message: str = Field(description="the same text as `detail`")
    field: str | None = Field(default=None, description="the offending field or parameter, when one is")
    reason: str | None = Field(default=None, description="a finer code for the field's problem, when there is one")


class BlockedReason(ResponseModel):
    code: str
    message: str
    citation: str | None


class ComplianceProblem(Problem):
    """403 `compliance_blocked`: the gate said no. Nothing was created (no call id is given)."""

    decision_id: str = Field(description="the audited decision (`GET /v1/decisions/{decision_id}`)")
    reasons: list[BlockedReason]

