"""Schemathesis over the generated OpenAPI document, against the API app on real PostgreSQL and
Redis, without the runtimes (the full dialer's run is in tests/controller/test_api_fuzz.py):
0 answers 5xx (but the 503 `controller_unavailable` of the parts it runs without), 0 answers
that do not match their documented status, content type, headers or schema."""

from __future__ import annotations

import asyncio

import pytest

from crm_bridge.store import TokenRole
from dialer.app import openapi_document
from tests.api.conftest import Api
from tests.api.schema_run import exercise

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SEED = 20261129
EXAMPLES = 20
# Without the runtimes, these answer 503 `controller_unavailable` (with Retry-After) as documented.
WITHOUT_RUNTIMES = frozenset({
    "POST /v1/calls", "POST /v1/calls/{call_id}/hangup", "POST /v1/calls/{call_id}/monitor", "GET /v1/calls/live",
    "GET /v1/monitors/{monitor_id}", "DELETE /v1/monitors/{monitor_id}", "POST /v1/monitors/{monitor_id}/mode",
    "POST /v1/agents/{agent_id}/login", "POST /v1/agents/{agent_id}/logout", "POST /v1/agents/{agent_id}/pause",
    "POST /v1/agents/{agent_id}/ready", "GET /v1/agents/{agent_id}/state", "GET /v1/agents/{agent_id}/campaigns",
    "POST /v1/campaigns/{campaign_id}/start",
    "POST /v1/campaigns/{campaign_id}/stop", "GET /v1/campaigns/{campaign_id}",
    "GET /v1/recordings/{recording_id}/audio", "POST /v1/messages", "POST /v1/campaigns/{campaign_id}/message-templates",
    "POST /v1/texting/provider/inbound", "POST /v1/texting/provider/status",
    "POST /v1/campaigns/{campaign_id}/pause", "POST /v1/campaigns/{campaign_id}/resume",
})


async def test_every_operation_answers_as_documented(api: Api) -> None:
    tokens = [api.crm, await api.token(TokenRole.ADMIN), await api.token(TokenRole.SUPERVISOR), api.agent, None]
    base_url = str(api.client.make_url("")).rstrip("/")
    report = await asyncio.to_thread(exercise, openapi_document(), base_url, tokens, seed=SEED, examples=EXAMPLES,
                                     allowed_503=WITHOUT_RUNTIMES)
    assert not report.server_errors, "\n".join(report.server_errors)  # each with its status and body
    assert report.failures == []
    operations = {label for label, _ in report.statuses}
    assert len(operations) == sum(len(item) for item in openapi_document()["paths"].values())
    assert any(status < 300 for _, status in report.statuses)
    print(f"schemathesis: {report.requests} requests over {len(operations)} operations")
