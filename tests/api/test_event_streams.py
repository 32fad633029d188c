"""The WebSockets: an agent's console and a supervisor's wallboard get typed messages with
ISO-8601 UTC times, the wallboard a full snapshot first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from crm_bridge.store import TokenRole
from dialer.api.events import AgentStreamMessage, EventHub, SupervisorStreamMessage
from dialer.campaign.agent import AgentSnapshot, AgentState
from tests.api.conftest import Api, open_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def streams(pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[tuple[Api, EventHub]]:
    hub = EventHub()
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state", hub=hub) as api:
        yield api, hub


def _state(agent_id: str, version: int) -> dict[str, Any]:
    return AgentSnapshot(agent_id=agent_id, state=AgentState.PAUSED, since=1795000000.5, version=version,
                         campaign_ids=("c1",), channel_id="ch-1", pause_reason="lunch").to_json()


async def test_the_agent_and_the_wallboard_see_the_agents_state_with_iso_times(streams: tuple[Api, EventHub]) -> None:
    api, hub = streams
    supervisor = await api.token(TokenRole.SUPERVISOR)
    agent_messages: TypeAdapter[Any] = TypeAdapter(AgentStreamMessage)
    staff_messages: TypeAdapter[Any] = TypeAdapter(SupervisorStreamMessage)
    async with api.client.ws_connect(f"/v1/agents/{api.agent_id}/events?access_token={api.agent}") as agent, \
            api.client.ws_connect("/v1/events?interval=0.2", headers=api.auth(supervisor)) as board:
        assert (await agent.receive_json())["type"] == "subscribed"
        subscribed, snapshot = await board.receive_json(), await board.receive_json()
        assert (subscribed["type"], snapshot["type"]) == ("subscribed", "snapshot")
        assert snapshot["agents"] == snapshot["calls"] == snapshot["campaigns"] == []  # no runtimes here
        staff_messages.validate_python(snapshot)

        hub.publish(api.agent_id, _state(api.agent_id, 4))
        hub.publish(api.other_agent_id, _state(api.other_agent_id, 1))  # not this agent's
        mine = await agent.receive_json()
        assert mine["since"] == "2026-11-18T11:06:40.500000Z" and mine["pause_reason"] == "lunch"
        agent_messages.validate_python(mine)
        seen = [await board.receive_json(), await board.receive_json()]
        assert {(m["agent_id"], m["since"]) for m in seen} == {(api.agent_id, "2026-11-18T11:06:40.500000Z"),
                                                               (api.other_agent_id, "2026-11-18T11:06:40.500000Z")}
        for message in seen:
            staff_messages.validate_python(message)


async def test_streams_refuse_plain_requests_and_other_roles(streams: tuple[Api, EventHub]) -> None:
    api, _ = streams
    plain = await api.client.get("/v1/events", headers=api.auth(await api.token(TokenRole.ADMIN)))
    assert plain.status == 400 and (await plain.json())["error"] == "websocket_required"
    assert (await api.client.get("/v1/events", headers=api.auth(api.crm))).status == 403
    assert (await api.client.get("/v1/events", headers=api.auth(api.agent))).status == 403
    other = await api.client.get(f"/v1/agents/{api.other_agent_id}/events", headers=api.auth(api.agent))
    assert other.status == 403
