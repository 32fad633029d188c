"""Agents as every kind of call finds them: the active CRM agent, how to dial its phone, and
what Asterisk knows of that phone (`GET /endpoints/PJSIP/{name}`: configured or not, a phone
registered on it or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from enum import StrEnum
from typing import Protocol

from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import Agent, CrmStore
from dialer.ari.errors import AriError, NotFound
from dialer.ari.models import Endpoint
from dialer.runtime.errors import Refused

# How long an admin's write waits for Asterisk's answer about an endpoint before it goes on
# without it (with a warning): ARI on 127.0.0.1 answers in milliseconds.
ENDPOINT_CHECK_SECONDS = 3.0


def agent_endpoint(sip_endpoint: str | None, agent_id: str) -> str:
    """The dial string of an agent's phone (`PJSIP/agent1001`, or a full one such as `Local/...`)."""
    endpoint = sip_endpoint or agent_id
    return endpoint if "/" in endpoint else f"PJSIP/{endpoint}"


def pjsip_resource(dial_string: str) -> str | None:
    """The PJSIP endpoint a dial string rings (`PJSIP/agent1001` -> `agent1001`; in
    `PJSIP/1001@edge`, Asterisk dials 1001 through the endpoint `edge`); None for another
    technology (`Local/sim1@agent-sim`, the simulator's agents), which has no endpoint to ask
    about."""
    technology, _, resource = dial_string.partition("/")
    endpoint = resource.rpartition("@")[2]
    return endpoint if technology.upper() == "PJSIP" and endpoint else None


class EndpointReader(Protocol):
    """The part of ARI that describes endpoints (`AriClient.get_endpoint`)."""

    def get_endpoint(self, technology: str, resource: str) -> Awaitable[Endpoint]: ...


class EndpointStatus(StrEnum):
    """What Asterisk says about a PJSIP endpoint."""

    REGISTERED = "registered"  # configured, and a phone (or the cluster's edge) is reachable on it
    OFFLINE = "offline"  # configured, no phone registered on it now
    UNKNOWN = "unknown"  # Asterisk has no such endpoint (ARI 404)
    UNCHECKED = "unchecked"  # Asterisk could not be asked (down, slow) or it is no PJSIP endpoint


async def endpoint_status(ari: EndpointReader, dial_string: str,
                          seconds: float = ENDPOINT_CHECK_SECONDS) -> EndpointStatus:
    """`GET /endpoints/PJSIP/{name}` for the endpoint a dial string rings. ARI's `state` is
    `offline` while no contact is registered (seen on Asterisk 22.10), `online` once one is, and
    `unknown` for a static contact that is not qualified (a cluster's edge): only `offline`
    means no phone."""
    resource = pjsip_resource(dial_string)
    if resource is None:
        return EndpointStatus.UNCHECKED
    try:
        async with asyncio.timeout(seconds):
            endpoint = await ari.get_endpoint("PJSIP", resource)
    except NotFound:
        return EndpointStatus.UNKNOWN
    except (AriError, TimeoutError):
        return EndpointStatus.UNCHECKED
    return EndpointStatus.OFFLINE if endpoint.state == "offline" else EndpointStatus.REGISTERED


async def why_phone_unreachable(ari: EndpointReader, dial_string: str, agent_id: str) -> Refused | None:
    """After Asterisk refused to call an agent's phone ("Allocation failed", the same answer for
    an endpoint it does not have and for one with no phone registered): the reason the agent
    can act on, or None when the endpoint does not tell."""
    status = await endpoint_status(ari, dial_string)
    if status is EndpointStatus.UNKNOWN:
        return Refused(409, "sip_endpoint_unknown",
                       f"agent {agent_id!r} is set to be called on {dial_string}, which Asterisk does not have: "
                       "an admin must give the agent an existing SIP endpoint", field_name="sip_endpoint")
    if status is EndpointStatus.OFFLINE:
        return Refused(409, "softphone_not_registered",
                       f"no softphone is registered on {dial_string}: start the agent's phone (or the console's "
                       "browser phone) and sign it in, then log in again", field_name="sip_endpoint")
    return None


async def refuse_unknown_agent(store: CrmStore, agent_id: str) -> None:
    """404 `agent_not_found` (`field`: `agent_id`) when the CRM has no agent `agent_id`: what every
    `/v1/agents/{agent_id}/...` endpoint answers for an id it does not know (docs/api.md, "Agent
    sessions"). While PostgreSQL does not answer the agent cannot be looked up and is let through:
    the sessions and the event streams keep working without the database."""
    try:
        known = await store.get_agent(agent_id) is not None
    except DatabaseUnavailable:
        return
    if not known:
        raise Refused(404, "agent_not_found", f"no agent {agent_id!r}", field_name="agent_id")


async def active_agent(store: CrmStore, agent_id: str, *, in_path: bool = False) -> Agent:
    """The CRM's agent, refused when not active (409) or unknown: 422 `unknown_agent` when the
    id is a field of the body, 404 `agent_not_found` when it names the resource (`in_path`,
    `/v1/agents/{agent_id}/...`), as the admin API says of an unknown agent."""
    agent = await store.get_agent(agent_id)
    if agent is None and in_path:
        raise Refused(404, "agent_not_found", f"no agent {agent_id!r}", field_name="agent_id")
    if agent is None:
        raise Refused(422, "unknown_agent", f"no agent {agent_id!r}", field_name="agent_id")
    if not agent.active:
        raise Refused(409, "agent_inactive", f"agent {agent_id!r} is not active", field_name="agent_id")
    return agent
