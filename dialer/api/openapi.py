"""The OpenAPI 3.1 document of the HTTP API, generated from the route registry
(`dialer.api.routes`) and the routes' pydantic models, served at `/v1/openapi.json`; and the
AsyncAPI 3.0 document of the event streams (the WebSockets' messages), at `/v1/asyncapi.json`.

Every operation gets its `operationId`, tags, parameters (path, query, `Idempotency-Key`), its
request body, its success responses with their headers (`Location` on 201/202, `Link` on
lists) and the errors it can answer with, each an RFC 9457 problem (`Problem`): 400 for an
unreadable request or parameter, 401/403 where a token is needed, 404 where the path names a
resource, 422 where a body or query is validated, 503 (with `Retry-After`) everywhere a
dependency can be down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.json_schema import models_json_schema

from dialer.api.events import STREAM_MESSAGES
from dialer.api.http import PROBLEM_JSON
from dialer.api.routes import Answer, RouteSpec, RouteTable
from dialer.api.schema import Problem, ResponseModel
from dialer.api.webhooks import WEBHOOK_EVENT_MODELS

VERSION = "0.2.0"
REF = "#/components/schemas/{model}"
GENERIC_ERRORS = {
    400: "the request cannot be read: a body that is not a JSON object, a path or query parameter with control "
         "characters (`invalid_json`, `invalid_parameter`, `unknown_parameter`, `invalid_cursor`, `invalid_header`)",
    401: "missing, unknown or revoked token (`unauthorized`)",
    403: "the token's role may not do this (`forbidden`)",
    404: "no such resource (or not one this token may see)",
    413: "the request body is larger than 256 KiB (`request_too_large`)",
    422: "a field or parameter is invalid (`invalid_field`, `unknown_field`, `invisible_characters`; `field` "
         "names it)",
    503: "a dependency does not answer (`database_unavailable`, `redis_unavailable`, `controller_unavailable`...); "
         "retry after `Retry-After` seconds",
}
DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document", dict)
ASYNC_DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("asyncapi_document", dict)
routes = RouteTable("meta")


class OpenApiDocument(ResponseModel):
    """An OpenAPI 3.1 document (this one)."""

    model_config = ConfigDict(extra="allow")
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


class AsyncApiDocument(ResponseModel):
    """An AsyncAPI 3.0 document (the event streams)."""

    model_config = ConfigDict(extra="allow")
    asyncapi: str
    info: dict[str, Any]
    channels: dict[str, Any]
    operations: dict[str, Any]
    components: dict[str, Any]


@routes.get("/v1/openapi.json", "openapi", "This document", roles=None,
            responses={200: Answer(OpenApiDocument, "the OpenAPI 3.1 document")})
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[DOCUMENT])


@routes.get("/v1/asyncapi.json", "asyncapi", "The event streams' messages (AsyncAPI 3.0)", roles=None,
            responses={200: Answer(AsyncApiDocument, "the AsyncAPI 3.0 document")})
async def asyncapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[ASYNC_DOCUMENT])


# ---- generation -------------------------------------------------------------------------------
def _models(specs: Sequence[RouteSpec]) -> list[tuple[type[BaseModel], str]]:
    found: dict[tuple[type[BaseModel], str], None] = {(Problem, "serialization"): None}
    for spec in specs:
        if spec.body is not None:
            found[(spec.body, "validation")] = None
        for answer in spec.responses.values():
            if answer.model is not None:
                found[(answer.model, "serialization")] = None
        for model in spec.problems.values():
            found[(model, "serialization")] = None
    return list(found)


def _schemas(specs: Sequence[RouteSpec]) -> tuple[dict[tuple[type[BaseModel], str], Any], dict[str, Any]]:
    models = _models(specs)
    refs, defs = models_json_schema(models, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for name, adapter in STREAM_MESSAGES.items():
        schema = TypeAdapter(adapter).json_schema(ref_template=REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    for model in dict.fromkeys(WEBHOOK_EVENT_MODELS.values()):
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return dict(refs), schemas  # type: ignore[arg-type]


def _query_parameters(spec: RouteSpec) -> list[dict[str, Any]]:
    if spec.query is None:
        return []
    schema = spec.query.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, property_ in schema.get("properties", {}).items():
        description = property_.pop("description", None)
        property_.pop("title", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": property_}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _content(answer: Answer, refs: dict[tuple[type[BaseModel], str], Any]) -> dict[str, Any] | None:
    if not answer.content_type:
        return None
    types = (answer.content_type,) if isinstance(answer.content_type, str) else answer.content_type
    content: dict[str, Any] = {}
    for media_type in types:
        if answer.model is not None:
            schema = refs[(answer.model, "serialization")]
        elif media_type.startswith("audio/"):
            schema = {"type": "string", "format": "binary"}
        else:
            schema = {"type": "string"}
        content[media_type] = {"schema": schema}
    return content


def _headers(headers: dict[str, str], required: Iterable[str] = ()) -> dict[str, Any]:
    needed = set(required)
    return {name: {"description": text, "required": name in needed, "schema": {"type": "string"}}
            for name, text in headers.items()}


def _operation(spec: RouteSpec, refs: dict[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": spec.operation_id, "summary": spec.summary, "tags": list(spec.tags)}
    if spec.description:
        operation["description"] = spec.description
    if spec.roles is None:
        operation["security"] = []
    else:
        operation["x-roles"] = sorted(role.value for role in spec.roles)
    parameters = [{"name": name, "in": "path", "required": True, "description": spec.parameters.get(name, name),
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200}} for name in spec.path_parameters]
    parameters += _query_parameters(spec)
    parameters += [{"name": name, "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
                   for name, text in spec.header_parameters.items()]
    if spec.idempotent:
        parameters.append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": "a retry with the same key gets the first answer (same status and body) and does nothing "
                           "again; the same key with another request is 422 `idempotency_key_reused`"})
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        required = bool(spec.body.model_json_schema().get("required"))
        operation["requestBody"] = {"required": required, "content": {"application/json": {
            "schema": refs[(spec.body, "validation")]}}}
    responses: dict[str, Any] = {}
    for status, answer in sorted(spec.responses.items()):
        response: dict[str, Any] = {"description": answer.description}
        content = _content(answer, refs)
        if content:
            response["content"] = content
        headers = dict(answer.headers)
        if spec.idempotent and status < 300:
            headers["Idempotent-Replayed"] = "`true` on an answer replayed for a repeated Idempotency-Key"
        needed = [name for name in headers if name == "Location" and status in (201, 202)]
        needed += [name for name in headers if name == "Retry-After" and status == 503]
        if headers:
            response["headers"] = _headers(headers, needed)
        responses[str(status)] = response
    for status, text in sorted(_errors(spec).items()):
        if str(status) in responses:
            continue
        schema = refs[(Problem, "serialization")]
        if status in spec.problems:
            schema = {"anyOf": [refs[(spec.problems[status], "serialization")], schema]}
        response = {"description": text, "content": {PROBLEM_JSON: {"schema": schema}}}
        if status == 503:
            response["headers"] = _headers({"Retry-After": "seconds to wait before retrying"}, ["Retry-After"])
        responses[str(status)] = response
    operation["responses"] = responses
    operation.update(spec.extra)
    return operation


def _errors(spec: RouteSpec) -> dict[int, str]:
    statuses = {400, 503}
    if spec.roles is not None:
        statuses |= {401, 403}
    if spec.path_parameters:
        statuses.add(404)
    if spec.body is not None or spec.refuses_a_body:
        statuses |= {413, 422}
    if spec.query is not None:
        statuses.add(422)
    if spec.idempotent:
        statuses |= {409, 422}
    errors = {status: GENERIC_ERRORS.get(status, "") for status in statuses}
    if spec.idempotent:
        errors[409] = "`idempotency_key_in_progress`: the first request with this key is still running; retry"
    for status, text in spec.errors.items():
        errors[status] = f"{text}; or {errors[status]}" if errors.get(status) else text
    return errors


def openapi_document(tables: Iterable[RouteTable]) -> dict[str, Any]:
    """The document of every route of `tables`."""
    specs = [route.spec for table in tables for route in table.routes]
    ids = [spec.operation_id for spec in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"operationIds must be unique: {sorted(i for i in ids if ids.count(i) > 1)}")
    refs, schemas = _schemas(specs)
    paths: dict[str, dict[str, Any]] = {}
    for spec in sorted(specs, key=lambda s: (s.path, s.method)):
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, refs)
    tags = sorted({tag for spec in specs for tag in spec.tags})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialer-engine API",
            "version": VERSION,
            "description": "Calls, leads, dispositions, opt-outs, campaigns and monitoring for the CRM, agents and "
            "supervisors. Authenticate with `Authorization: Bearer TOKEN` (tokens: `dialer token create`); "
            "`x-roles` lists the roles an operation takes. Errors are RFC 9457 problem details "
            "(`application/problem+json`) with the machine-readable `error`. Times are ISO-8601 UTC. Lists are "
            "paged with `limit` and an opaque `cursor` (`next`). The WebSockets' messages: "
            "`AgentStreamMessage`, `SupervisorStreamMessage` (and /v1/asyncapi.json).",
        },
        "tags": [{"name": tag} for tag in tags],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
        "security": [{"bearer": []}],
        "paths": paths,
        # What the dialer POSTs to a subscription's URL (docs/webhooks.md), one entry per event type.
        "webhooks": {name: {"post": {
            "summary": name, "operationId": f"webhook_{name.replace('.', '_')}", "tags": ["webhooks"],
            "description": " ".join((model.__doc__ or name).split()),
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF.format(model=model.__name__)}}}},
            "responses": {"2XX": {"description": "received (any other answer is retried for 24 h)"}},
        }} for name, model in WEBHOOK_EVENT_MODELS.items()},
    }


def asyncapi_document(openapi_: dict[str, Any]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the two WebSockets, sharing the OpenAPI document's schemas."""
    schemas = openapi_["components"]["schemas"]

    def messages(union: str) -> dict[str, Any]:
        found = {}
        for choice in schemas[union]["oneOf"]:
            name = choice["$ref"].rsplit("/", 1)[-1]
            found[name] = {"name": name, "payload": {"$ref": f"#/components/schemas/{name}"},
                           "summary": schemas[name].get("description", name).split("\n")[0]}
        return found

    agent, staff = messages("AgentStreamMessage"), messages("SupervisorStreamMessage")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "dialer-engine event streams", "version": VERSION,
                 "description": "WebSockets (JSON text messages, each with a `type`). Authenticate with "
                                "`Authorization: Bearer TOKEN` or `?access_token=` (browsers). The first messages "
                                "after connecting carry the full state, so a reconnect is always enough."},
        "channels": {
            "agentEvents": {"address": "/v1/agents/{agent_id}/events",
                            "parameters": {"agent_id": {"description": "the agent's id"}},
                            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in agent}},
            "wallboardEvents": {"address": "/v1/events",
                                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in staff}},
        },
        "operations": {
            "receiveAgentEvents": {"action": "receive", "channel": {"$ref": "#/channels/agentEvents"},
                                   "summary": "an agent's state, screen pops and call states"},
            "receiveWallboardEvents": {"action": "receive", "channel": {"$ref": "#/channels/wallboardEvents"},
                                       "summary": "every agent's state, the live calls, the campaigns' figures"},
        },
        "components": {"schemas": schemas, "messages": {**agent, **staff}},
    }


def install_documents(app: web.Application, tables: Sequence[RouteTable]) -> None:
    document = openapi_document(tables)
    app[DOCUMENT] = document
    app[ASYNC_DOCUMENT] = asyncapi_document(document)
