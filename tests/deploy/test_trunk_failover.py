"""Same-call trunk failover on the real stack: an Asterisk whose first trunk reaches a carrier out
of channels (every call refused with 503 at once: the simulated carrier's `sim-congested`
endpoint) and whose second trunk reaches the simulated public network. A campaign's call is
refused on the first trunk and carried by the second: one call, one `calls` row naming the trunk
that carried it and the failed try with its SIP code, under the gate's one decision."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import TokenRole
from dialer.campaign.agent import AgentState
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance, ensure_install
from dialer.provision.ports import free_local_port
from dialer.provision.trunks import CallerIdRecord, Trunk, TrunkAuth
from dialer.serve import dialer_services
from dialer.settings import from_environment
from tests.campaign.conftest import CAMPAIGN_TUNING, GATE_NOW, Floor
from tests.conftest import AUDIT_KEYS_DIR, RUN_ID
from tests.controller.conftest import mark_lists_fresh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# A lead's leg (`cmp-<id>-lead`, `-lead-2` after a failover), not the snoops recording its sides.
LEAD_LEG = re.compile(r"^cmp-[0-9a-f]+-lead(-\d+)?$")

# The caller ID of the test floor's campaigns (`Floor.campaign`), vouched for by the agency.
VOUCHED = CallerIdRecord("+18885550123", "Acme Insurance LLC", "Jane Smith, compliance", dt.date(2026, 3, 1))


def simulated_trunk(name: str, carrier_port: int, from_user: str) -> Trunk:
    """A trunk to the simulated carrier's transport; `from_user` picks the carrier's side."""
    return Trunk(name, "127.0.0.1", port=carrier_port, auth=TrunkAuth.IP, from_user=from_user,
                 # Nothing calls us from there: inbound calls stay on the development `trunk`.
                 match=("127.0.0.9",), qualify_seconds=0)


@pytest.fixture(scope="module")
def two_trunks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    carrier_port = free_local_port()
    settings = from_environment(
        {}, instance=f"test-failover-{RUN_ID}", ari_port=free_local_port(), sip_port=free_local_port(),
        carrier_port=carrier_port, ari_password=f"test-{uuid.uuid4().hex}",
        state_root=str(tmp_path_factory.mktemp("failover-state")), rtp_start=43001, rtp_end=44000, agents=1,
        supervisors=1,
        trunks=(simulated_trunk("carrier-full", carrier_port, "sim-congested"),
                simulated_trunk("carrier-ok", carrier_port, "dialer")),
    )
    instance = AsteriskInstance.for_settings(ensure_install(settings, say=lambda _: None), settings)
    with instance.running(remove=True):
        yield instance


@contextlib.asynccontextmanager
async def _floor(asterisk: AsteriskInstance, trunks: tuple[Trunk, ...], pg_dsn: str, redis_url: str,
                 redis_prefix: str, tmp_path: Path) -> AsyncIterator[Floor]:
    config = asterisk.config
    settings = from_environment(
        {}, pg_dsn=pg_dsn, redis_url=redis_url, redis_prefix=redis_prefix, ari_port=config.ari_port,
        ari_user=config.ari_user, ari_password=config.ari_password, ari_app=config.ari_app,
        cache_dir=tmp_path / "cache", state_root=str(tmp_path / "state"),
        recordings_root=str(tmp_path / "recordings"), audit_keys_root=str(AUDIT_KEYS_DIR),
        instance="failover-test", trunks=trunks, caller_ids=(VOUCHED,),
    )
    async with dialer_services(settings, gate_clock=lambda: GATE_NOW, drain_seconds=5,
                               timeouts=CallTimeouts(agent_ring=8.0, lead_ring=15.0),
                               campaign_overrides=CAMPAIGN_TUNING) as services:
        await mark_lists_fresh(services, GATE_NOW)
        crm = (await services.store.issue_token(TokenRole.CRM, label="tests")).secret
        async with TestClient(TestServer(services.app)) as client:
            yield Floor(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6])


@pytest.fixture
async def floor(two_trunks: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str,
                tmp_path: Path) -> AsyncIterator[Floor]:
    async with _floor(two_trunks, two_trunks.config.trunks, pg_dsn, redis_url, redis_prefix, tmp_path) as floor:
        yield floor


@pytest.fixture
async def one_channel(two_trunks: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str,
                      tmp_path: Path) -> AsyncIterator[Floor]:
    """The dialer with only the working trunk, and an account of one channel on it (the channel
    limit is the dialer's own: Asterisk's configuration is the same)."""
    (working,) = [trunk for trunk in two_trunks.config.trunks if trunk.name == "carrier-ok"]
    trunks = (replace(working, max_channels=1),)
    async with _floor(two_trunks, trunks, pg_dsn, redis_url, redis_prefix, tmp_path) as floor:
        yield floor


async def test_a_call_refused_with_503_on_the_first_trunk_is_carried_by_the_next(floor: Floor) -> None:
    runtime = floor.campaigns
    campaign_id = await floor.campaign()
    phone = "+12125671204"  # a person in New York: 2 s of ringing, 4 s of talk
    (lead_id,) = (await floor.leads(campaign_id, [phone], state="NY", zip="10001")).values()
    agent_id = await floor.agent("Local/failover1@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")
    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= 1 and not runner.calls, 60, "the call over")
    await runtime.stop_campaign(campaign_id)
    await floor.services.outbox.flush(20)

    (call,) = await floor.fetch("SELECT * FROM calls WHERE campaign_id = $1", campaign_id)
    assert call["lead_id"] == lead_id and call["outcome"] == "answered", (call["hangup_cause_text"], call["trunk_attempts"])
    assert call["bridged_at"] is not None and call["agent_id"] == agent_id
    assert call["trunk"] == "carrier-ok"
    (failed,) = json.loads(call["trunk_attempts"])
    assert failed["trunk"] == "carrier-full" and failed["sip_code"] == 503 and failed["cause"] == 34
    # One gate decision covered both tries (the 503 came back within its validity).
    (decision,) = await floor.fetch("SELECT allowed FROM compliance_decisions WHERE decision_id = $1",
                                    call["compliance_decision_id"])
    assert decision["allowed"]
    dial_checks = await floor.fetch(
        "SELECT count(*) AS n FROM compliance_decisions WHERE lead_id = $1 AND campaign_id = $2 AND allowed",
        lead_id, campaign_id)
    assert dial_checks[0]["n"] <= 2  # the hopper's batch check and the one at dial time, no third
    # The full trunk is skipped by the next dials for a while.
    router = floor.campaigns.settings.trunk_router
    assert router is not None and router.status(time.time())["carrier-full"] == "down"
    assert router.active("carrier-ok") == 0 and router.active("carrier-full") == 0
    metrics = await (await floor.client.get("/metrics")).text()
    assert 'dialer_trunk_up{trunk="carrier-full"} 0.0' in metrics and 'dialer_trunk_up{trunk="carrier-ok"} 1.0' in metrics
    assert 'dialer_trunk_calls{trunk="carrier-ok"} 0.0' in metrics
    await floor.nothing_left("cmp-")


async def _ended_row(floor: Floor, call_id: str) -> dict[str, object]:
    await floor.wait_for(lambda: floor.services.calls.call_status(call_id) is None, 40, f"{call_id} over")
    await floor.services.outbox.flush(20)
    (row,) = await floor.fetch("SELECT * FROM calls WHERE call_id = $1", call_id)
    return dict(row)


async def test_a_click_to_call_refused_on_the_first_trunk_is_carried_by_the_next(floor: Floor) -> None:
    """The failover campaign calls have, on the same path (one router, one `next_trunk`): the
    click-to-call's lead is refused with 503 on the first trunk and dialed again on the next,
    the same call and row, the agent waiting in the recorded bridge; the next click-to-call
    (like the next campaign dial) goes straight to the trunk that works."""
    router = floor.services.calls.settings.trunk_router
    assert router is not None and router is floor.campaigns.settings.trunk_router
    agent_id = await floor.agent("Local/failover2@agent-sim")
    placed = []
    for phone in ("+12125671302", "+12125671303"):  # people in New York: 3 s ringing, 2 or 3 s of talk
        response = await floor.client.post("/v1/calls", json={"phone": phone, "agent_id": agent_id},
                                           headers=floor.auth())
        assert response.status == 202, await response.text()
        placed.append(await _ended_row(floor, (await response.json())["call_id"]))
    first, second = placed
    assert first["outcome"] == "answered" and first["bridged_at"], (first["hangup_cause_text"], first["trunk_attempts"])
    assert first["trunk"] == "carrier-ok"
    (failed,) = json.loads(str(first["trunk_attempts"]))
    assert failed["trunk"] == "carrier-full" and failed["sip_code"] == 503 and failed["cause"] == 34
    # The retry went out under the recheck's decision (fresh): no further gate decision for it.
    decisions = await floor.fetch("SELECT count(*) AS n FROM compliance_decisions WHERE phone = $1",
                                  "+12125671302")
    assert decisions[0]["n"] == 2  # at the request, and the recheck before the first dial
    assert second["trunk"] == "carrier-ok" and second["outcome"] == "answered" and second["bridged_at"]
    assert json.loads(str(second["trunk_attempts"])) == []
    assert router.status(time.time())["carrier-full"] == "down"
    assert router.active("carrier-full") == router.active("carrier-ok") == 0
    await floor.nothing_left("call-")


async def test_a_campaign_whose_caller_id_nobody_vouched_for_does_not_start(floor: Floor) -> None:
    """16 CFR 310.4(a)(8): with the agency's caller IDs configured, a campaign sending another
    number is refused before it dials, with a machine-readable reason."""
    campaign_id = f"camp-{uuid.uuid4().hex[:8]}"
    await floor.seed_many([("campaign_upsert", {
        "campaign_id": campaign_id, "name": "Unvouched", "caller_id": "+13125550100", "dial_mode": "progressive"})])
    response = await floor.client.post(f"/v1/campaigns/{campaign_id}/start", headers=floor.auth())
    assert response.status == 422
    problem = await response.json()
    assert problem["error"] == "caller_id_not_vouched" and problem["field"] == "caller_id"
    assert "+13125550100 is not among the agency's vouched numbers" in problem["detail"]
    assert campaign_id not in floor.campaigns.campaigns


async def test_a_trunk_never_carries_more_calls_than_its_channels(one_channel: Floor) -> None:
    """Three leads and three ready agents, a trunk of one channel: the calls go one at a time
    (the others wait in the hopper), and every lead is called."""
    floor = one_channel
    runtime = floor.campaigns
    router = runtime.settings.trunk_router
    assert router is not None
    campaign_id = await floor.campaign(dial_mode="power")
    phones = [f"+121256{n}1102" for n in (7, 8, 9)]  # people in New York: 1 s ringing, 2 s of talk
    await floor.leads(campaign_id, phones, state="NY", zip="10001")
    agents = [await floor.agent(f"Local/channels{n}@agent-sim") for n in (1, 2, 3)]
    for agent_id in agents:
        await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: all((s := runtime.agent_state(a)) is not None and s.state is AgentState.READY
                                     for a in agents), 20, "agents ready")
    await runtime.start_campaign(campaign_id)
    runner = runtime.campaigns[campaign_id]
    most_legs, most_on_trunk = 0, 0  # lead legs in Asterisk at once; calls the router counts on the trunk
    async with asyncio.timeout(60):
        while runner.counters["dials"] < len(phones) or runner.calls:
            legs = [name for name in await floor.asterisk_objects("cmp-") if LEAD_LEG.match(name)]
            most_legs = max(most_legs, len(legs))
            most_on_trunk = max(most_on_trunk, router.active("carrier-ok"))
            await asyncio.sleep(0.05)
    await runtime.stop_campaign(campaign_id)
    await floor.services.outbox.flush(20)
    calls = await floor.fetch("SELECT lead_number, trunk, outcome FROM calls WHERE campaign_id = $1", campaign_id)
    assert sorted(call["lead_number"] for call in calls) == sorted(phones)
    assert {call["trunk"] for call in calls} == {"carrier-ok"}
    assert most_legs == 1 and most_on_trunk == 1, (most_legs, most_on_trunk)
    assert router.active("carrier-ok") == 0


async def test_no_carrier_trunk_can_be_named_as_a_supervisors_phone(floor: Floor) -> None:
    """A monitor leg originated to a trunk would go out to the carrier: every trunk is refused."""
    supervisor = await floor.token(TokenRole.SUPERVISOR)
    for endpoint in ("carrier-full", "carrier-ok"):
        response = await floor.client.post("/v1/calls/cmp-nope/monitor", json={"endpoint": endpoint, "mode": "listen"},
                                           headers=floor.auth(supervisor))
        problem = await response.json()
        assert (response.status, problem["error"], problem["field"]) == (422, "invalid_field", "endpoint"), problem
