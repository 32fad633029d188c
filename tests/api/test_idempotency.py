"""`Idempotency-Key` (issue 10, item 6): a replay returns the first answer (status and body),
the same key with another body is 422, concurrent duplicates wait for the first and nothing is
done twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _post(api: Api, path: str, body: Any, key: str | None, token: str | None = None) -> tuple[int, bytes, Any]:
    headers = api.auth(token or api.crm)
    if key is not None:
        headers["Idempotency-Key"] = key
    response = await api.client.post(path, json=body, headers=headers)
    return response.status, await response.read(), response.headers


async def test_a_replay_gets_the_first_answer_and_creates_nothing(api: Api) -> None:
    key = f"crm-{uuid.uuid4()}"
    lead = {"first_name": "Ida", "phone": "+14045550101", "source": "web"}
    first = await _post(api, "/v1/leads", lead, key)
    again = await _post(api, "/v1/leads", {"source": "web", "phone": "+14045550101", "first_name": "Ida"}, key)
    assert first[0] == again[0] == 201
    assert first[1] == again[1]  # the same bytes: the same lead id and received_at
    assert again[2]["Idempotent-Replayed"] == "true" and again[2]["Location"] == first[2]["Location"]
    assert "Idempotent-Replayed" not in first[2]
    # Without the key, the same person is merged (200), which shows the replay did not run again.
    assert (await _post(api, "/v1/leads", lead, None))[0] == 200


async def test_a_refusal_is_replayed_too(api: Api) -> None:
    key = f"crm-{uuid.uuid4()}"
    bad = {"first_name": "Ida", "phone": "+14045550102", "source": "web", "campaign_id": "no-such-campaign"}
    first = await _post(api, "/v1/leads", bad, key)
    again = await _post(api, "/v1/leads", bad, key)
    assert first[0] == again[0] == 422 and first[1] == again[1]


async def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    key = f"crm-{uuid.uuid4()}"
    assert (await _post(api, "/v1/opt-outs", {"phone": "+14045550103", "source": "api"}, key))[0] == 201
    status, body, _ = await _post(api, "/v1/opt-outs", {"phone": "+14045550104", "source": "api"}, key)
    assert status == 422 and b"idempotency_key_reused" in body
    # Keys belong to their token: another client's same key is another request.
    other = await api.token(TokenRole.CRM)
    assert (await _post(api, "/v1/opt-outs", {"phone": "+14045550104", "source": "api"}, key, other))[0] == 201


@pytest.mark.parametrize("key", ["", " ", "x" * 201, "ключ", "a\tb"])
async def test_a_bad_key_is_refused(api: Api, key: str) -> None:
    headers = {**api.auth(api.crm), "Idempotency-Key": key}
    response = await api.client.post("/v1/opt-outs", json={"phone": "+14045550105", "source": "api"},
                                     headers=headers)
    assert response.status == 400 and (await response.json())["field"] == "Idempotency-Key"


async def test_fifty_requests_at_once_with_one_key_make_one_lead(api: Api) -> None:
    key = f"crm-{uuid.uuid4()}"
    lead = {"first_name": "Una", "phone": "+14045550106", "source": "web", "email": "una@example.com"}
    answers = await asyncio.gather(*(_post(api, "/v1/leads", lead, key) for _ in range(50)))
    assert {status for status, _, _ in answers} == {201}
    assert len({body for _, body, _ in answers}) == 1
    assert sum(1 for _, _, headers in answers if "Idempotent-Replayed" in headers) == 49
    assert await api.outbox.flush(10)
    assert len(await api.store.find_leads_by_phone("+14045550106")) == 1


async def test_a_server_side_failure_is_not_kept(api: Api) -> None:
    # This API runs without the controller: 503, and the key stays free for a retry.
    key = f"crm-{uuid.uuid4()}"
    body = {"lead_id": api.lead_id, "agent_id": api.agent_id}
    assert (await _post(api, "/v1/calls", body, key))[0] == 503
    assert (await _post(api, "/v1/calls", body, key))[2].get("Idempotent-Replayed") is None
