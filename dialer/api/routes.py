"""The route registry: each route is declared once, with what the OpenAPI document needs
(method, path, roles, request and response models per status, operationId, tags, summary),
and registered on the app from that same declaration, so the document cannot drift from what
is served.

    routes = RouteTable("calls")

    @routes.post("/v1/calls", "placeCall", "Call a lead for an agent", roles=ALL_ROLES,
                 body=CallRequest, responses={202: Answer(CallAccepted, "the call is under way")},
                 errors={409: "...", 422: "..."}, idempotent=True)
    async def post_call(request: web.Request, body: CallRequest) -> Reply: ...

The wrapper does what every route needs before the function runs: path and query parameters
checked (no control characters, NUL or lone surrogates; unknown and repeated parameters
refused), the JSON body parsed and validated into its model (400 `invalid_json`, 422
`invalid_field`/`unknown_field` naming the field; an operation without a body model takes none,
or `{}`), and the `Idempotency-Key` honoured
(`dialer.api.idempotency`). The function gets typed values and returns a `Reply` (a model, a
status, `Location`) or, for audio and WebSockets, its own response.

Why our own and not aiohttp-pydantic: that library documents class-based views with models
taken from method annotations; we keep plain route functions, need roles, per-status response
models, `Idempotency-Key` and the API's own problem codes (`field` naming the first bad field,
unknown fields first), and a document that lists exactly the served routes. The part that is
hard (validation and JSON Schema) is pydantic's; what is here is the glue, about 200 lines.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm_bridge.store import TokenRole
from crm_bridge.visible_text import INVISIBLE_CHARACTERS
from dialer.api.http import ApiError, Handler, allow, public
from dialer.api.idempotency import idempotent
from dialer.api.schema import QueryModel, RequestModel

RouteFunction = Callable[..., Awaitable["Reply | web.StreamResponse"]]
_PATH_PARAMETER = re.compile(r"\{([^}]+)\}")
_BAD_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
PARAMETER_MAX = 200
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NoBody(RequestModel):
    """The body of an operation that takes none: `{}` (or no body at all)."""


@dataclass(frozen=True)
class Answer:
    """A documented response: its model (None for a body that is not JSON), what it means, its
    content type, and the headers it carries (name -> description)."""

    model: type[BaseModel] | None
    description: str
    content_type: str | tuple[str, ...] = "application/json"  # several: any of them, as asked
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """What a route function returns: a body, its status, and `Location` (required with 201 and
    202: the created resource, or where to watch the work accepted)."""

    body: BaseModel
    status: int = 200
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    exclude_unset: bool = False  # leave out the fields the body was not given (its optional parts)

    def response(self) -> web.Response:
        headers = dict(self.headers)
        if self.location is not None:
            headers["Location"] = self.location
        body = self.body.model_dump_json(exclude_unset=self.exclude_unset)
        return web.Response(body=body.encode(), status=self.status,
                            content_type="application/json", headers=headers)


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    operation_id: str
    summary: str
    tags: tuple[str, ...]
    roles: frozenset[TokenRole] | None  # None: public (no token)
    responses: Mapping[int, Answer]
    errors: Mapping[int, str] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    query: type[QueryModel] | None = None
    description: str | None = None
    idempotent: bool = False
    parameters: Mapping[str, str] = field(default_factory=dict)  # path parameter -> description
    header_parameters: Mapping[str, str] = field(default_factory=dict)  # request header -> description
    extra: Mapping[str, Any] = field(default_factory=dict)  # merged into the operation's document
    # A problem with more members than `Problem` for an error status (e.g. 403 compliance_blocked).
    problems: Mapping[int, type[BaseModel]] = field(default_factory=dict)

    @property
    def path_parameters(self) -> list[str]:
        return _PATH_PARAMETER.findall(self.path)

    @property
    def refuses_a_body(self) -> bool:
        """A POST, PATCH or DELETE that takes no body (`.../start`, `.../hangup`): it is sent none,
        or `{}`; a field sent to it would be silently ignored, so it is refused instead."""
        return self.method in _WRITES and self.body is None and "requestBody" not in self.extra


@dataclass(frozen=True)
class Route:
    spec: RouteSpec
    handler: Handler
    function: RouteFunction


class RouteTable:
    """The routes of one module, in the order they are declared."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[Route] = []

    def route(self, method: str, path: str, operation_id: str, summary: str, *,
              roles: Iterable[TokenRole] | None, responses: Mapping[int, Answer],
              tags: tuple[str, ...] | None = None, **options: Any) -> Callable[[RouteFunction], RouteFunction]:
        def register(function: RouteFunction) -> RouteFunction:
            spec = RouteSpec(method=method.upper(), path=path, operation_id=operation_id, summary=summary,
                             tags=tags or (self.tag,), roles=None if roles is None else frozenset(roles),
                             responses=responses, description=options.pop("description", None) or
                             _docstring(function), **options)
            handler = _wrap(spec, function)
            if spec.roles is None:
                public(handler)
            else:
                allow(*spec.roles)(handler)
            self.routes.append(Route(spec, handler, function))
            return function

        return register

    def get(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[RouteFunction], RouteFunction]:
        return self.route("GET", path, operation_id, summary, **options)

    def post(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[RouteFunction], RouteFunction]:
        return self.route("POST", path, operation_id, summary, **options)

    def delete(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[RouteFunction], RouteFunction]:
        return self.route("DELETE", path, operation_id, summary, **options)


def _docstring(function: RouteFunction) -> str | None:
    text = (function.__doc__ or "").strip()
    return " ".join(text.split()) or None


def add_routes(app: web.Application, tables: Iterable[RouteTable]) -> None:
    """Register every route. Fixed paths go before templated ones (`/v1/calls/live` before
    `/v1/calls/{call_id}`), so the order of the tables does not matter."""
    routes = [route for table in tables for route in table.routes]
    routes.sort(key=lambda route: (route.spec.path.count("{"), route.spec.path))
    for route in routes:
        if route.spec.method == "GET":
            app.router.add_get(route.spec.path, route.handler)  # and HEAD, as aiohttp does for GETs
        else:
            app.router.add_route(route.spec.method, route.spec.path, route.handler)


# ---- the wrapper -----------------------------------------------------------------------------
def _wrap(spec: RouteSpec, function: RouteFunction) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        _check_path(request, spec)
        arguments: dict[str, Any] = {}
        if spec.query is not None:
            arguments["query"] = parse_query(request, spec.query)
        elif request.query:
            unknown = sorted(request.query)[0]
            raise ApiError(400, "unknown_parameter", f"unknown query parameter {unknown!r}", field=_shown(unknown))
        if spec.body is not None:
            arguments["body"] = parse_body(await request.read(), spec.body)
        elif spec.refuses_a_body:
            parse_body(await request.read(), NoBody)  # `{}` or nothing; 422 `unknown_field` for a field
        if spec.idempotent:
            return await idempotent(request, spec.operation_id, arguments.get("body"),
                                    lambda: _call(function, request, arguments))
        return await _call(function, request, arguments)

    handler.__name__ = handler.__qualname__ = function.__name__
    return handler


async def _call(function: RouteFunction, request: web.Request, arguments: dict[str, Any]) -> web.StreamResponse:
    result = await function(request, **arguments)
    return result.response() if isinstance(result, Reply) else result


def _shown(name: str) -> str:
    """A parameter name safe to echo back in a problem."""
    return _BAD_CHARACTERS.sub("?", name)[:PARAMETER_MAX]


def _check_text(name: str, value: str) -> None:
    if _BAD_CHARACTERS.search(value) or len(value) > 2000:
        raise ApiError(400, "invalid_parameter",
                       f"parameter {_shown(name)!r} has control characters, invalid text or is too long",
                       field=_shown(name))


def _check_path(request: web.Request, spec: RouteSpec) -> None:
    for name in spec.path_parameters:
        value = request.match_info.get(name, "")
        _check_text(name, value)
        if len(value) > PARAMETER_MAX or not value.strip():
            raise ApiError(400, "invalid_parameter", f"{name} must be 1-{PARAMETER_MAX} characters", field=name)


def parse_query(request: web.Request, model: type[QueryModel]) -> Any:
    """The query string as `model` (400 for unknown, repeated or unreadable parameters; 422
    naming the parameter for a bad value)."""
    values: dict[str, str] = {}
    # A parameter may be named by an alias (`from`, a Python keyword, is the field `from_`).
    accepted = {field.alias or name for name, field in model.model_fields.items()}
    for name, value in request.query.items():
        _check_text(name, name)
        _check_text(name, value)
        if name not in accepted:
            status, code = model.unknown_parameter
            raise ApiError(status, code, f"unknown query parameter {name!r}", field=name)
        if name in values:
            raise ApiError(400, "invalid_parameter", f"give {name!r} once", field=name)
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise _field_problem(error, "parameter") from None


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """The JSON body as `model`: an empty body is `{}` (so a missing field is named). A UTF-8
    byte order mark, which some Windows tools write, is ignored as RFC 8259 8.1 allows."""
    try:
        return model.model_validate_json(raw.removeprefix(b"\xef\xbb\xbf").strip() or b"{}")
    except ValidationError as error:
        problems = error.errors(include_url=False)
        for found in problems:
            if found["type"] == "json_invalid":
                raise ApiError(400, "invalid_json", f"the request body is not valid JSON ({found['msg']})") from None
            if not found["loc"]:
                raise ApiError(400, "invalid_json", "the request body must be a JSON object") from None
        raise _field_problem(error, "field") from None


def _field_problem(error: ValidationError, what: str) -> ApiError:
    """The first problem, unknown names first (as a reader checks a form)."""
    problems = error.errors(include_url=False)
    extra = [found for found in problems if found["type"] == "extra_forbidden"]
    if extra:
        # A nested unknown name (`amd_settings.foo`) is named whole: "unknown field 'amd_settings'"
        # would send the reader looking for a mistake that is not there.
        path = _shown(".".join(str(part) for part in extra[0]["loc"]))
        return ApiError(422, "unknown_field", f"unknown {what} {path!r}", field=_shown(str(extra[0]["loc"][0])))
    found = problems[0]
    location = [str(part) for part in found["loc"]]
    name = location[0] if location else "body"
    if found["type"] == "missing":
        return ApiError(422, "invalid_field", f"{name} is required", field=name)
    message = str(found["msg"]).removeprefix("Value error, ")
    where = ".".join(location) or name
    # A text that would read differently on screen has its own code (`dialer.api.schema.Name`).
    code = INVISIBLE_CHARACTERS if found["type"] == INVISIBLE_CHARACTERS else "invalid_field"
    return ApiError(422, code, f"{where}: {message[:1].lower()}{message[1:]}", field=name)

