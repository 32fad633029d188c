"""The API's conventions, as a client meets them: problem details, `Location`, `Retry-After`,
cursor pages, ISO-8601 UTC times, a complete generated OpenAPI document."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from dialer.api.events import agent_message
from dialer.app import openapi_document
from dialer.campaign.agent import AgentSnapshot, AgentState
from dialer.campaign.openapi import AgentStateBody
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_errors_are_problem_details_with_the_machine_readable_code(api: Api) -> None:
    response = await api.client.get("/v1/calls/no-such-call", headers=api.auth(api.crm))
    assert response.status == 404 and response.content_type == "application/problem+json"
    body = await response.json()
    assert body == {"type": "urn:dialer-engine:problem:call_not_found", "title": body["title"], "status": 404,
                    "detail": "no such call", "instance": "/v1/calls/no-such-call", "error": "call_not_found",
                    "message": "no such call"}
    bad = await api.client.get("/v1/calls?limit=0", headers=api.auth(api.crm))
    problem = await bad.json()
    assert (bad.status, problem["error"], problem["field"], problem["status"]) == (422, "invalid_field", "limit", 422)
    assert problem["detail"] == problem["message"] and problem["title"]


async def test_a_503_says_when_to_retry(api: Api) -> None:
    # This API runs without the call controller: placing a call cannot work now.
    response = await api.client.post("/v1/calls", json={"lead_id": api.lead_id, "agent_id": api.agent_id},
                                      headers=api.auth(api.crm))
    assert response.status == 503 and (await response.json())["error"] == "controller_unavailable"
    assert int(response.headers["Retry-After"]) > 0


async def test_created_and_accepted_answers_say_where_the_resource_is(api: Api) -> None:
    opted = await api.client.post("/v1/opt-outs", json={"phone": "(415) 555-3101", "source": "api"},
                                  headers=api.auth(api.crm))
    assert opted.status == 201 and opted.headers["Location"] == "/v1/opt-outs/+14155553101"
    assert await api.outbox.flush(10)
    status = await (await api.client.get(opted.headers["Location"], headers=api.auth(api.crm))).json()
    assert status["opted_out"] and status["opt_outs"][0]["source"] == "api"

    disposed = await api.client.post(f"/v1/calls/{api.call_id}/disposition", json={"code": "contacted"},
                                     headers=api.auth(api.agent))
    assert disposed.status == 202 and disposed.headers["Location"] == f"/v1/calls/{api.call_id}/dispositions"
    assert await api.outbox.flush(10)
    listed = await (await api.client.get(disposed.headers["Location"], headers=api.auth(api.agent))).json()
    assert [d["code"] for d in listed["dispositions"]] == ["contacted"]
    assert ISO_UTC.match(listed["dispositions"][0]["disposed_at"])

    lead = await api.client.post("/v1/leads", json={"first_name": "Lou", "phone": "+13125550177", "source": "web"},
                                 headers=api.auth(api.crm))
    assert lead.status == 201 and lead.headers["Location"] == f"/v1/leads/{(await lead.json())['lead_id']}"
    assert ISO_UTC.match((await lead.json())["received_at"])


async def _seed_calls(api: Api, count: int, lead_id: str, days_later: int = 0) -> list[str]:
    base = datetime(2026, 11, 20, 12, 0, tzinfo=UTC) + timedelta(days=days_later)
    ids = [f"call-page-{uuid.uuid4().hex[:8]}-{index}" for index in range(count)]
    # Two calls share each instant: the id breaks the tie, so the order is total.
    await api.outbox.put_many([("call", {"call_id": call_id, "version": 1, "direction": "outbound",
                                         "lead_id": lead_id, "requested_at": base + timedelta(seconds=index // 2)})
                               for index, call_id in enumerate(ids)])
    assert await api.outbox.flush(60)  # over a thousand applies: room for a loaded machine
    return ids


async def _all_pages(api: Api, url: str, key: str, token: str) -> list[list[dict[str, Any]]]:
    pages = []
    while url:
        response = await api.client.get(url, headers=api.auth(token))
        assert response.status == 200, await response.text()
        body = await response.json()
        pages.append(body[key])
        assert (body["next"] is None) == ("Link" not in response.headers)
        url = body["next"]
    return pages


async def test_lists_page_with_an_opaque_cursor_in_a_stable_order(api: Api) -> None:
    lead_id = f"lead-page-{uuid.uuid4().hex[:6]}"
    await api.outbox.put("lead_upsert", {"lead_id": lead_id, "first_name": "Pat", "phones": ["+12125550999"]})
    ids = await _seed_calls(api, 7, lead_id)
    pages = await _all_pages(api, f"/v1/calls?lead_id={lead_id}&limit=3", "calls", api.crm)
    assert [len(page) for page in pages] == [3, 3, 1]
    served = [call["call_id"] for page in pages for call in page]
    assert sorted(served) == sorted(ids) and len(set(served)) == 7
    keys = [(call["requested_at"], call["call_id"]) for page in pages for call in page]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id

    # New calls that arrive between two pages neither shift nor repeat what the next page serves.
    first = await (await api.client.get(f"/v1/calls?lead_id={lead_id}&limit=3", headers=api.auth(api.crm))).json()
    await _seed_calls(api, 2, lead_id, days_later=1)
    second = await (await api.client.get(first["next"], headers=api.auth(api.crm))).json()
    assert [c["call_id"] for c in second["calls"]] == served[3:6]

    cursor = first["next"].split("cursor=")[1]
    other = await api.client.get(f"/v1/calls?agent_id=x&cursor={cursor}", headers=api.auth(api.crm))
    assert other.status == 400 and (await other.json())["error"] == "invalid_cursor"
    for bad in ("nope", "eyJhdCI6MX0", "%00", "x" * 900):
        answer = await api.client.get(f"/v1/calls?cursor={bad}", headers=api.auth(api.crm))
        assert answer.status == 400 and (await answer.json())["field"] in ("cursor", "cursor"), bad


async def test_the_call_log_pages_past_a_thousand_rows(api: Api) -> None:
    lead_id = f"lead-many-{uuid.uuid4().hex[:6]}"
    await api.outbox.put("lead_upsert", {"lead_id": lead_id, "first_name": "Max", "phones": ["+12125550998"]})
    await _seed_calls(api, 1203, lead_id)
    pages = await _all_pages(api, f"/v1/calls?lead_id={lead_id}&limit=1000", "calls", api.crm)
    assert [len(page) for page in pages] == [1000, 203]


async def test_leads_are_searched_by_name_phone_or_email_and_agents_see_the_leads_they_work(api: Api) -> None:
    tag = uuid.uuid4().hex[:6]
    owned, called, foreign = (f"lead-{tag}-{n}" for n in ("own", "call", "far"))
    await api.outbox.put_many([
        ("lead_upsert", {"lead_id": owned, "first_name": "Rosa", "last_name": f"Quist{tag}",
                         "phones": ["+16175550101"], "email": f"rosa{tag}@example.com", "owner_agent_id": api.agent_id}),
        ("lead_upsert", {"lead_id": called, "first_name": "Ron", "last_name": f"Quist{tag}",
                         "phones": ["+16175550102"]}),
        ("lead_upsert", {"lead_id": foreign, "first_name": "Rita", "last_name": f"Quist{tag}",
                         "phones": ["+16175550103"]}),
        ("call", {"call_id": f"call-{tag}", "version": 1, "direction": "outbound", "lead_id": called,
                  "agent_id": api.agent_id, "requested_at": datetime.now(UTC)}),
    ])
    assert await api.outbox.flush(10)

    async def search(query: str, token: str) -> list[str]:
        response = await api.client.get(f"/v1/leads?{query}", headers=api.auth(token))
        assert response.status == 200, await response.text()
        return sorted(lead["lead_id"] for lead in (await response.json())["leads"])

    assert await search(f"name=quist{tag}", api.crm) == sorted([owned, called, foreign])
    assert await search(f"name=rosa%20quist{tag}", api.crm) == [owned]
    assert await search("phone=(617)%20555-0102", api.crm) == [called]
    assert await search(f"email=ROSA{tag}@EXAMPLE.COM", api.crm) == [owned]
    assert await search(f"name=quist{tag}", api.agent) == sorted([owned, called])  # owned or called
    assert await search(f"name=quist{tag}", api.other_agent) == []
    assert (await api.client.get(f"/v1/leads/{foreign}", headers=api.auth(api.agent))).status == 404
    one = await (await api.client.get(f"/v1/leads/{owned}", headers=api.auth(api.agent))).json()
    assert one["email"] == f"rosa{tag}@example.com" and ISO_UTC.match(one["created_at"])
    bad = await api.client.get("/v1/leads?phone=12", headers=api.auth(api.crm))
    assert bad.status == 422 and (await bad.json())["field"] == "phone"
    wild = await search("name=%25", api.crm)  # a LIKE wildcard is searched for, not expanded
    assert owned not in wild


async def test_the_gates_decisions_are_listed_for_staff_only(api: Api) -> None:
    decision_id = str(uuid.uuid4())
    phone = "+12125550777"
    await api.outbox.put("compliance_decision", {
        "decision_id": decision_id, "decided_at": datetime.now(UTC), "phone": phone, "purpose": "telemarketing",
        "allowed": False, "reasons": [{"code": "opted_out", "message": "on the company's list", "citation": None}]})
    assert await api.outbox.flush(10)
    response = await api.client.get(f"/v1/decisions?phone={phone}&allowed=false", headers=api.auth(api.crm))
    assert response.status == 200, await response.text()
    (decision,) = (await response.json())["decisions"]
    assert decision["decision_id"] == decision_id and decision["reasons"][0]["code"] == "opted_out"
    assert ISO_UTC.match(decision["decided_at"])
    one = await api.client.get(f"/v1/decisions/{decision_id}", headers=api.auth(await api.token(TokenRole.SUPERVISOR)))
    assert one.status == 200 and (await one.json())["phone"] == phone
    assert (await api.client.get("/v1/decisions", headers=api.auth(api.agent))).status == 403
    assert (await api.client.get("/v1/decisions/not-a-uuid", headers=api.auth(api.crm))).status == 404


def test_agent_states_carry_iso_times_at_the_edge() -> None:
    snapshot = AgentSnapshot(agent_id="a1", state=AgentState.WRAP_UP, since=1795000000.25, version=3,
                             campaign_ids=("c1",), channel_id="ch", call_id="cmp-1", wrap_up_until=1795000030.0)
    body = AgentStateBody.of(snapshot).model_dump(mode="json")
    assert body["since"] == "2026-11-18T11:06:40.250000Z" and body["wrap_up_until"] == "2026-11-18T11:07:10Z"
    # The stream's edge does the same to what the runtime publishes (epoch floats).
    assert agent_message(snapshot.to_json()) == body
    assert agent_message({"type": "something_new", "x": 1}) == {"type": "something_new", "x": 1}


def _schemas(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_the_document_is_complete() -> None:
    document = openapi_document()
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) and all(op["tags"] and op["summary"] for op in operations)
    for op in operations:
        for status, response in op["responses"].items():
            for content in response.get("content", {}).values():
                for schema in _schemas(content["schema"]):
                    assert schema != {"type": "object"}, (op["operationId"], status)
            if status in ("201", "202"):
                assert response["headers"]["Location"]["required"], op["operationId"]
            if status == "503":
                assert response["headers"]["Retry-After"]["required"], op["operationId"]
    for name, schema in document["components"]["schemas"].items():
        if schema.get("type") == "object":
            assert "properties" in schema or "additionalProperties" in schema, name
    assert {"AgentStreamMessage", "SupervisorStreamMessage"} <= set(document["components"]["schemas"])
