"""Agents as every kind of call finds them: the active CRM agent, and how to dial its phone."""

from __future__ import annotations

from crm_bridge.store import Agent, CrmStore
from dialer.runtime.errors import Refused


def agent_endpoint(sip_endpoint: str | None, agent_id: str) -> str:
    """The dial string of an agent's phone (`PJSIP/agent1001`, or a full one such as `Local/...`)."""
    endpoint = sip_endpoint or agent_id
    return endpoint if "/" in endpoint else f"PJSIP/{endpoint}"


async def active_agent(store: CrmStore, agent_id: str) -> Agent:
    """The CRM's agent, refused when unknown (422) or not active (409)."""
    agent = await store.get_agent(agent_id)
    if agent is None:
        raise Refused(422, "unknown_agent", f"no agent {agent_id!r}", field_name="agent_id")
    if not agent.active:
        raise Refused(409, "agent_inactive", f"agent {agent_id!r} is not active", field_name="agent_id")
    return agent
