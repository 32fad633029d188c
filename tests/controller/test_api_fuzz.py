"""Every route of the OpenAPI document, fed random and malformed input under every role, on the
full dialer (controller, campaigns, monitors, recordings): never a 500, always a problem with a
machine-readable code; then schemathesis over the same document; then `Idempotency-Key` under
50 concurrent requests with a real call. The generators are seeded, so a failure replays."""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from dialer.app import openapi_document
from tests.api.schema_run import exercise
from tests.controller.conftest import Dialer

pytestmark = pytest.mark.integration
ROUNDS_PER_OPERATION = 40
NASTY_TEXT = ["", " ", "nope", "ü" * 3, "../../etc/passwd", "x" * 5000, "%00", "' OR 1=1 --", "+1212555",
              "2026-13-45T99:99", "-1", "1e309", "null", "\u202e", "lead-\n1"]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 17])
    if kind == 3:
        return rng.choice([0.5, -3.25, 1e308, float("nan")]) if rng.random() < 0.5 else 3.0
    if kind in (4, 5):
        return rng.choice(NASTY_TEXT)
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "phone", "mode", "id"]): _random_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def _body_for(operation: dict[str, Any], rng: random.Random) -> Any:
    schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema") or {})
    names = list(schema.get("properties", {}))
    if rng.random() < 0.15:
        return _random_value(rng)  # not even an object
    body = {name: _random_value(rng) for name in names if rng.random() < 0.7}
    if rng.random() < 0.2:
        body[rng.choice(["colour", "__proto__", "x" * 300])] = _random_value(rng)
    return body


def _query_for(operation: dict[str, Any], rng: random.Random) -> dict[str, str]:
    names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    return {name: str(rng.choice([*NASTY_TEXT, "10", "0", "2026-11-24T17:00:00Z"])) for name in names
            if rng.random() < 0.6}


@pytest.mark.timeout(240)
async def test_no_input_on_any_route_under_any_role_gets_a_500(dialer: Dialer) -> None:
    rng = random.Random(20261128)
    agent_id = await dialer.agent("agent1019")
    tokens: list[str | None] = [dialer.crm_token, await dialer.token(TokenRole.AGENT, agent_id),
                                await dialer.token(TokenRole.SUPERVISOR), await dialer.token(TokenRole.ADMIN), None,
                                "not-a-token"]
    known_ids = [agent_id, await dialer.lead("+12125551399"), await dialer.campaign()]
    served: list[tuple[str, str, int]] = []
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            # Seeded per operation: a new route does not change what the others are fed.
            rng = random.Random(f"20261128:{method}:{path}")
            for _ in range(ROUNDS_PER_OPERATION):
                ids = [*known_ids, "nope", "ü", "x" * 300]
                concrete = re.sub(r"\{[^}]+\}", lambda _, r=rng, ids=ids: r.choice(ids), path)
                token = rng.choice(tokens)
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                kwargs: dict[str, Any] = {"params": _query_for(operation, rng), "headers": headers}
                if method in ("post", "put", "patch"):
                    body = _body_for(operation, rng)
                    if rng.random() < 0.1:
                        kwargs["data"] = rng.choice([b"{", b"\xff\xfe", b"[]", b"1"])
                    else:
                        kwargs["data"] = json.dumps(body, allow_nan=True)
                    headers["Content-Type"] = "application/json"
                response = await dialer.client.request(method.upper(), concrete, **kwargs)
                payload = await response.read()
                served.append((method, path, response.status))
                assert response.status < 500, (method, concrete, kwargs, response.status, payload[:300])
                if response.status >= 400:
                    error = json.loads(payload)
                    assert isinstance(error.get("error"), str) and error["error"], (method, concrete, error)
    assert len({(m, p) for m, p, _ in served}) == sum(len(ops) for ops in openapi_document()["paths"].values())
    assert any(status < 300 for _, _, status in served)  # some inputs were good enough to be served
    await dialer.nothing_left()


@pytest.mark.timeout(400)
async def test_schemathesis_over_the_full_dialer_finds_no_5xx_and_no_undocumented_answer(dialer: Dialer) -> None:
    """The generated document, exercised by schemathesis against the dialer with its runtimes
    (controller, campaigns, monitors, recordings) on the real Asterisk, PostgreSQL and Redis."""
    agent_id = await dialer.agent("agent1018")
    tokens = [dialer.crm_token, await dialer.token(TokenRole.ADMIN), await dialer.token(TokenRole.SUPERVISOR),
              await dialer.token(TokenRole.AGENT, agent_id)]
    base_url = str(dialer.client.make_url("")).rstrip("/")
    report = await asyncio.to_thread(exercise, openapi_document(), base_url, tokens, seed=20261129, examples=15)
    assert report.server_errors == []
    assert report.failures == []
    operations = {label for label, _ in report.statuses}
    assert len(operations) == sum(len(item) for item in openapi_document()["paths"].values())
    print(f"schemathesis: {report.requests} requests over {len(operations)} operations")
    await dialer.nothing_left()


@pytest.mark.timeout(120)
async def test_fifty_requests_with_one_key_place_one_call_and_a_blocked_call_replays_its_403(dialer: Dialer) -> None:
    agent_id = await dialer.agent("agent1017")  # no phone registered: the call ends at once, which is enough
    lead_id = await dialer.lead("+12125551177")
    request = {"lead_id": lead_id, "agent_id": agent_id}
    headers = {**dialer.auth(), "Idempotency-Key": f"crm-{uuid.uuid4()}"}

    async def post(body: dict[str, Any], key_headers: dict[str, str]) -> tuple[int, bytes]:
        response = await dialer.client.post("/v1/calls", json=body, headers=key_headers)
        return response.status, await response.read()

    answers = await asyncio.gather(*(post(request, headers) for _ in range(50)))
    assert {status for status, _ in answers} == {202} and len({body for _, body in answers}) == 1
    call_id = json.loads(answers[0][1])["call_id"]
    await dialer.ended_call(call_id)
    rows = await dialer.fetch("SELECT call_id FROM calls WHERE lead_id = $1", lead_id)
    assert [row["call_id"] for row in rows] == [call_id]
    assert (await post({**request, "campaign_id": None}, headers))[0] == 202  # null is absent: the same request
    reused = await post({**request, "lead_id": await dialer.lead("+12125551179")}, headers)
    assert reused[0] == 422 and json.loads(reused[1])["error"] == "idempotency_key_reused"

    # A blocked call: the same 403 again for the same key, never a 202 for a call that does not exist.
    opted = await dialer.client.post("/v1/opt-outs", json={"phone": "+12125551178", "source": "api"},
                                     headers=dialer.auth())
    assert opted.status == 201
    blocked_headers = {**dialer.auth(), "Idempotency-Key": f"crm-{uuid.uuid4()}"}
    first = await post({"phone": "+12125551178", "agent_id": agent_id}, blocked_headers)
    again = await post({"phone": "+12125551178", "agent_id": agent_id}, blocked_headers)
    assert first[0] == again[0] == 403 and first[1] == again[1]
    assert b"call_id" not in first[1] and json.loads(first[1])["error"] == "compliance_blocked"
    await dialer.nothing_left()
