"""Every route of the OpenAPI document, fed random and malformed input under every role, on the
full dialer (controller, campaigns, monitors, recordings): never a 500, always a JSON error
with a machine-readable code. The generator is seeded, so a failure replays."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from dialer.app import openapi_document
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
