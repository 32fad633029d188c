"""Crafted input (issue 10, items 8 and 9): NUL bytes, lone surrogates, JSON nested 5,000 deep,
CR/LF in names, NUL in path and query parameters. Each gets a 4xx naming the problem, never a
500; and a 2xx means the record reaches PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crm_bridge.records import InvalidRecord, validate
from crm_bridge.store import TokenRole
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _post(api: Api, path: str, data: bytes | str) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(path, data=data, headers={**api.auth(api.crm), "Content-Type": "application/json"})
    return response.status, await response.json()


def _lead(**fields: str) -> str:
    import json

    return json.dumps({"first_name": "Ann", "phone": "+12125550142", "source": "web", **fields})


@pytest.mark.parametrize(("raw", "status", "field"), [
    (_lead(first_name="Ann\r\nX-Injected: 1"), 422, "first_name"),  # SIP header injection through a name
    (_lead(last_name="Lee\nVia: evil"), 422, "last_name"),
    (_lead(first_name="Ann\u0000"), 422, "first_name"),  # NUL: PostgreSQL cannot store it
    (_lead(city="Mi\u2028ami"), 422, "city"),
    (_lead(source="web\u0007"), 422, "source"),
    ('{"first_name": "\\ud800", "phone": "+12125550142", "source": "web"}', 400, None),  # a lone surrogate
    ('{"first_name": "Ann", "phone": "+12125550142", "source": "web", "zip": "' + "[" * 5000 + '"}', 422, "zip"),
    ('{"first_name": ' + "[" * 5000 + "]" * 5000 + "}", 400, None),  # nested 5,000 deep
    (b'{"first_name": "Ann\xff", "phone": "+12125550142", "source": "web"}', 400, None),  # not UTF-8
    ("", 422, "first_name"),
    ("[]", 400, None),
    ("null", 400, None),
])
async def test_a_bad_lead_is_refused_naming_the_field(api: Api, raw: bytes | str, status: int,
                                                     field: str | None) -> None:
    got, body = await _post(api, "/v1/leads", raw)
    assert (got, body.get("field")) == (status, field), body
    assert body["error"] in ("invalid_field", "invalid_json") and body["detail"]


async def test_an_accepted_lead_reaches_postgresql(api: Api) -> None:
    name = f"Zoë-{uuid.uuid4().hex[:4]} O'Brien"  # quotes, accents and hyphens are names, not attacks
    got, body = await _post(api, "/v1/leads", _lead(first_name=name, phone="+13125550188"))
    assert got == 201, body
    assert await api.outbox.flush(10)
    lead = await api.store.get_lead(body["lead_id"])
    assert lead is not None and lead.first_name == name
    assert api.outbox.stats().rejected == 0


@pytest.mark.parametrize("path", [
    "/v1/calls/call%00x", "/v1/calls/%0d%0aX", "/v1/leads/lead%00", "/v1/recordings/r%00", "/v1/monitors/m%00",
    "/v1/calls?lead_id=a%00b", "/v1/calls?agent_id=%0a", "/v1/leads?name=x%00", "/v1/calls?since=%00",
    "/v1/recordings?call_id=%00", "/v1/decisions?lead_id=%00", "/v1/calls?%00=1",
    "/v1/opt-outs/%00", "/v1/calls?limit=1&limit=2",
])
async def test_nul_and_control_characters_in_paths_and_queries_get_a_400(api: Api, path: str) -> None:
    admin = await api.token(TokenRole.ADMIN)  # may call every route: what is refused is the parameter
    response = await api.client.get(path, headers=api.auth(admin))
    body = await response.json()
    assert 400 <= response.status < 500, (path, body)
    assert body["error"] in ("invalid_parameter", "not_found", "invalid_field", "unknown_parameter"), (path, body)


async def test_bytes_that_are_not_utf8_in_a_query_are_no_server_error(api: Api) -> None:
    response = await api.client.get("/v1/calls?lead_id=%ed%a0%80%ff", headers=api.auth(api.crm))
    assert response.status < 500 and (await response.json())["calls"] == []


@pytest.mark.parametrize(("raw", "field"), [
    ('{"code": "contacted", "notes": "a\\u0000b"}', "notes"),
    ('{"code": "contacted\\r\\n"}', "code"),
    ('{"code": "callback", "callback_at": "2026-11-24T17:00:00"}', "callback_at"),  # no time zone
])
async def test_dispositions_refuse_what_cannot_be_stored(api: Api, raw: str, field: str) -> None:
    got, body = await _post(api, f"/v1/calls/{api.call_id}/disposition", raw)
    assert (got, body.get("field")) == (422, field), body


async def test_notes_keep_their_line_breaks(api: Api) -> None:
    got, body = await _post(api, f"/v1/calls/{api.call_id}/disposition",
                            '{"code": "contacted", "notes": "called back\\nwants a quote\\tMonday"}')
    assert got == 202, body
    assert await api.outbox.flush(10)
    (stored,) = [d for d in await api.store.list_dispositions(call_id=api.call_id)
                 if d.disposition_id == body["disposition_id"]]
    assert stored.notes == "called back\nwants a quote\tMonday"


@pytest.mark.parametrize("text", ["Ann\u0000", "Ann\ud800"])
def test_the_outboxs_own_validation_refuses_what_postgresql_cannot_store(text: str) -> None:
    # The root of "201 then lost": a record the outbox takes must be one PostgreSQL takes.
    with pytest.raises(InvalidRecord, match="first_name"):
        validate("lead_upsert", {"lead_id": "lead-1", "first_name": text})
