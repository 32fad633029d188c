"""`dialer agent ...` and `dialer campaign status` drive a running dialer through its API."""

from __future__ import annotations

import asyncio

import pytest

from crm_bridge.store import TokenRole
from dialer.campaign.agent import AgentState
from dialer.cli import main
from tests.campaign.conftest import Floor

pytestmark = pytest.mark.integration


@pytest.mark.timeout(90)
async def test_an_agent_logs_in_pauses_and_logs_out_from_the_command_line(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign()
    agent_id = await floor.agent("Local/cli1@agent-sim")
    token = await floor.token(TokenRole.AGENT, agent_id)
    crm = await floor.token(TokenRole.CRM)
    url = str(floor.client.make_url("")).rstrip("/")

    def dialer(*words: str, as_token: str = token) -> int:
        return main([*words, "--token", as_token, "--url", url])

    assert await asyncio.to_thread(dialer, "agent", "login", agent_id, "--campaign", campaign_id) == 0
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    assert await asyncio.to_thread(dialer, "agent", "pause", agent_id, "--reason", "lunch") == 0
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.PAUSED,
                         10, "agent paused")
    assert await asyncio.to_thread(dialer, "campaign", "status", campaign_id, as_token=crm) in (0, 1)
    # Another agent's session is not this token's to touch: a clear refusal, exit 1.
    assert await asyncio.to_thread(dialer, "agent", "logout", "someone-else") == 1
    assert "refused" in capsys.readouterr().err
    assert await asyncio.to_thread(dialer, "agent", "logout", agent_id) == 0
    await floor.wait_for(lambda: not runtime.agents, 15, "logged out")


def test_without_a_token_the_cli_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DIALER_API_TOKEN", raising=False)
    assert main(["agent", "state", "a1"]) == 2
    assert "dialer token create" in capsys.readouterr().err


