"""The HTTP API against real PostgreSQL (through the outbox) and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from dialer.app import openapi_document
from dialer.web.pages import PAGE_PATHS
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _routes(api: Api) -> set[tuple[str, str]]:
    app = api.client.server.app
    assert app is not None
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path in PAGE_PATHS:
            continue  # HTML pages and static files, not API (dialer.web.pages)
        found.add((route.method.lower(), str(path)))
    return found


async def test_openapi_document_lists_exactly_the_served_routes(api: Api) -> None:
    response = await api.client.get("/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document == openapi_document()
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == _routes(api)


async def test_calls_are_readable_by_the_crm_and_by_their_own_agent_only(api: Api) -> None:
    response = await api.client.get(f"/v1/calls/{api.call_id}", headers=api.auth(api.crm))
    assert response.status == 200
    body = await response.json()
    assert body["call_id"] == api.call_id and body["outcome"] == "answered" and body["lead_number"] == api.phone

    assert (await api.client.get(f"/v1/calls/{api.call_id}", headers=api.auth(api.agent))).status == 200
    other = await api.client.get(f"/v1/calls/{api.call_id}", headers=api.auth(api.other_agent))
    assert other.status == 404 and (await other.json())["error"] == "call_not_found"

    listed = await api.client.get(f"/v1/calls?lead_id={api.lead_id}", headers=api.auth(api.crm))
    assert [call["call_id"] for call in (await listed.json())["calls"]] == [api.call_id]
    mine = await api.client.get("/v1/calls", headers=api.auth(api.other_agent))
    assert (await mine.json())["calls"] == []


async def test_missing_or_revoked_tokens_are_refused(api: Api) -> None:
    missing = await api.client.get("/v1/calls")
    assert missing.status == 401 and (await missing.json())["error"] == "unauthorized"
    wrong = await api.client.get("/v1/calls", headers=api.auth("dlr_not-a-token"))
    assert wrong.status == 401
    issued = await api.store.issue_token(TokenRole.CRM)
    await api.store.revoke_token(issued.token.token_id)
    revoked = await api.client.get("/v1/calls", headers=api.auth(issued.secret))
    assert revoked.status == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("get", "/v1/calls?limit=abc", None, 422, "limit"),
        ("get", "/v1/calls?since=yesterday", None, 422, "since"),
        ("get", "/v1/calls?colour=blue", None, 400, "colour"),
        ("get", "/v1/calls/no-such-call", None, 404, None),
        ("post", "/v1/calls/{call}/disposition", "not json", 400, None),
        ("post", "/v1/calls/{call}/disposition", [1, 2], 400, None),
        ("post", "/v1/calls/{call}/disposition", {}, 422, "code"),
        ("post", "/v1/calls/{call}/disposition", {"code": "maybe"}, 422, "code"),
        ("post", "/v1/calls/{call}/disposition", {"code": "callback"}, 422, "code"),
        ("post", "/v1/calls/{call}/disposition", {"code": "contacted", "notes": 5}, 422, "notes"),
        ("post", "/v1/calls/{call}/disposition", {"code": "callback", "callback_at": "soon"}, 422, "callback_at"),
        ("post", "/v1/opt-outs", {"phone": "12", "source": "api"}, 422, "phone"),
        ("post", "/v1/opt-outs", {"phone": "+12125550100", "source": "fax"}, 422, "source"),
        ("post", "/v1/opt-outs", {"source": "api"}, 422, "phone"),
        ("delete", "/v1/calls/{call}", None, 405, None),
        ("get", "/v1/nothing-here", None, 404, None),
    ],
)
async def test_bad_input_gets_a_4xx_naming_the_problem(
    api: Api, method: str, path: str, body: object, status: int, field: str | None
) -> None:
    kwargs: dict[str, Any] = {"headers": api.auth(api.crm)}
    if isinstance(body, str):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    response = await api.client.request(method.upper(), path.format(call=api.call_id), **kwargs)
    assert response.status == status
    payload = await response.json()
    assert isinstance(payload["error"], str) and payload["message"]
    if field is not None:
        assert payload["field"] == field


async def test_disposition_moves_the_lead_stage(api: Api) -> None:
    response = await api.client.post(
        f"/v1/calls/{api.call_id}/disposition", json={"code": "appointment_set"}, headers=api.auth(api.agent)
    )
    assert response.status == 202, await response.text()
    assert await api.outbox.flush(10)
    lead = await api.store.get_lead(api.lead_id)
    assert lead is not None and lead.pipeline_stage.value == "appt_set"
    dispositions = await api.store.list_dispositions(call_id=api.call_id)
    assert [d.code.value for d in dispositions] == ["appointment_set"]


async def test_another_agent_cannot_dispose_of_a_call(api: Api) -> None:
    response = await api.client.post(
        f"/v1/calls/{api.call_id}/disposition", json={"code": "sale"}, headers=api.auth(api.other_agent)
    )
    assert response.status == 404


async def test_do_not_call_disposition_opts_the_number_out_at_once(api: Api) -> None:
    from compliance_rules.audit import MemoryAuditSink
    from compliance_rules.gate import ComplianceGate
    from compliance_rules.model import ContactRequest
    from compliance_rules.policy import CampaignPolicy
    from compliance_rules.ruleset import load_rulebook

    gate = ComplianceGate(api.dnc, MemoryAuditSink(), load_rulebook())
    before = await gate.decide(ContactRequest(phone=api.phone), CampaignPolicy())
    assert "opted_out" not in {reason.code for reason in before.reasons}

    response = await api.client.post(
        f"/v1/calls/{api.call_id}/disposition", json={"code": "do_not_call"}, headers=api.auth(api.agent)
    )
    assert response.status == 202
    after = await gate.decide(ContactRequest(phone=api.phone), CampaignPolicy())
    assert not after.allowed and "opted_out" in {reason.code for reason in after.reasons}
    assert await api.outbox.flush(10)
    assert await api.store.opted_out(api.phone)


async def test_api_opt_out_is_effective_and_stored(api: Api) -> None:
    response = await api.client.post(
        "/v1/opt-outs", json={"phone": "(415) 555-0901", "source": "api"}, headers=api.auth(api.crm)
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["phone"] == "+14155550901"
    assert await api.outbox.flush(10)
    for _ in range(20):
        if await api.store.opted_out("+14155550901"):
            break
        await asyncio.sleep(0.1)
    assert await api.store.opted_out("+14155550901")


async def test_opt_out_http_handler(api: Api) -> None:
    # Moved here from tests/compliance/test_gate_redis.py: the handler is the API's own route now
    # (the CRM's record first, then Redis), so it runs with the API's auth and outbox.
    from datetime import date

    from compliance_rules.model import ContactRequest
    from tests.compliance.helpers import ALL_STATES, codes
    from tests.compliance.test_gate_redis import MANUAL, NOW, gate_for

    for name in ("federal", *(f"state:{s}" for s in ALL_STATES)):
        await api.dnc.set_list_date(name, date(2026, 3, 1))
    client, headers = api.client, api.auth(api.crm)
    bad_json = await client.post("/v1/opt-outs", data=b"{nope", headers=headers)
    assert bad_json.status == 400 and (await bad_json.json())["error"] == "invalid_json"
    not_object = await client.post("/v1/opt-outs", json=[1], headers=headers)
    assert not_object.status == 400
    bad_phone = await client.post("/v1/opt-outs", json={"phone": "12", "source": "api"}, headers=headers)
    assert bad_phone.status == 422 and (await bad_phone.json())["field"] == "phone"
    bad_source = await client.post("/v1/opt-outs", json={"phone": "2125550188", "source": "pigeon"}, headers=headers)
    assert bad_source.status == 422 and (await bad_source.json())["field"] == "source"
    ok = await client.post("/v1/opt-outs", json={"phone": "(212) 555-0188", "source": "api"}, headers=headers)
    assert ok.status == 201 and (await ok.json())["phone"] == "+12125550188"
    gate = gate_for(api.dnc)
    assert codes(await gate.decide(ContactRequest("2125550188"), MANUAL, NOW)) == {"opted_out"}
