"""Speed-to-lead on the real stack (not a test): `POST /v1/leads` for a campaign with
`speed_to_lead` on, in progressive mode, with ready Local-channel agents (`Local/N@agent-sim`);
the time from sending the POST to the lead's dial, over many leads posted one after another and
in bursts of concurrent posts. The seed asks for under 60 s; we aim for under 1 s.

Every web lead is a busy number of the simulated network (last four digits `30TT`: busy at
once, SIP 486), so its call ends within a moment and never takes the agent, who stays ready.
Per lead it measures, from the moment the POST is sent:

  - the HTTP response (201, `speed_to_lead: true`);
  - the call requested: the campaign call's `requested_at` (the `calls` row's field), taken by
    the campaign runner when it takes the lead from the hopper, before its last gate decision;
  - the originate accepted: `POST /channels` answered by Asterisk (the ARI client's
    `originate` is wrapped, passing every call through, to note when it returns; the campaign
    runtime has no dial listener).

Baselines measured in the same run: the bare HTTP round trip of `GET /v1/health` on the same
server, and one compliance-gate decision for a lead (the dial path takes two: the pre-check at
the POST and the one with the cap reservation before the originate).

It starts its own Asterisk instance on free ports, its own PostgreSQL database and a private
Redis key prefix (database 14), and removes them when it ends (scripts/bench_stack.py). The
gate's clock is fixed inside every calling window (`--gate-time`); the federal DNC list is
marked fresh for that day. Everything listens on 127.0.0.1.

With `--dial-mode predictive --ringing N`, the campaign is predictive and N leads of its list
are numbers that ring until the dial times out (15 s), so the pacer has lines in flight when the
web leads arrive: a web lead with an agent ready is still dialed at once, on a line of its own.

    .venv/bin/python scripts/bench_speed_to_lead.py [--leads 200] [--burst 1] [--agents 1]
        [--dial-mode progressive|predictive] [--ringing 0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from bench_stack import bench_stack, percentile

from crm_bridge.store import TokenRole
from dialer.campaign.dialing import campaign_lead_record
from dialer.campaign.runtime import CampaignCallRunner, CampaignRuntime, placeholder_lead
from dialer.click_to_call.machine import CallTimeouts
from dialer.logs import configure_logging
from dialer.runtime.gate import contact_request
from dialer.serve import dialer_services

GATE_NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # a Tuesday, noon in New York: inside every window
SAMPLES = 50


@dataclass
class Dialed:
    requested_at: float  # epoch seconds, the campaign call's requested_at
    accepted_at: float  # epoch seconds, ARI's originate returned
    runner: CampaignCallRunner


@dataclass
class Posted:
    sent_at: float
    answered_at: float
    lead_id: str


class DialWatch:
    """Notes, per lead, when its campaign call was requested and its originate accepted."""

    def __init__(self, runtime: CampaignRuntime) -> None:
        self.runtime = runtime
        self.dialed: dict[str, Dialed] = {}
        self.progress = asyncio.Event()
        original: Callable[..., Awaitable[Any]] = runtime.ari.originate

        async def originate(channel_id: str, *args: Any, **kwargs: Any) -> Any:
            result = await original(channel_id, *args, **kwargs)
            accepted = time.time()
            for call in list(runtime.calls.values()):
                if call.request.lead_channel == channel_id:
                    self.dialed[call.entry.lead_id] = Dialed(call.requested_at, accepted, call)
                    self.progress.set()
            return result

        # An instance attribute shadowing the method: every caller gets the real originate.
        setattr(runtime.ari, "originate", originate)  # noqa: B010

    async def wait_dialed(self, lead_ids: Sequence[str], within: float) -> None:
        async with asyncio.timeout(within):
            while not all(lead_id in self.dialed for lead_id in lead_ids):
                self.progress.clear()
                await self.progress.wait()

    async def wait_ended(self, lead_ids: Sequence[str], within: float) -> None:
        async with asyncio.timeout(within):
            for lead_id in lead_ids:
                await self.dialed[lead_id].runner.done.wait()


def busy_numbers() -> Iterator[str]:
    """Distinct New York numbers, busy at once: `+1212 NXX 30TT` (no N11 exchange, no 555, no
    999, which the simulated network keeps for people who press 9)."""
    for exchange in range(200, 999):
        if exchange % 100 == 11 or exchange == 555:
            continue
        for tail in range(100):
            yield f"+1212{exchange:03d}30{tail:02d}"


def _ms(values: Sequence[float], fraction: float) -> float:
    return percentile(values, fraction) * 1000


def _line(name: str, values: Sequence[float], health: float, gate: float) -> str:
    p50 = _ms(values, 0.5)
    return (
        f"  {name:<34} n={len(values):<4} p50={p50:7.1f}  p90={_ms(values, 0.9):7.1f}  "
        f"p99={_ms(values, 0.99):7.1f}  max={_ms(values, 1.0):7.1f} ms"
        f"  (p50 = {p50 / (health * 1000):5.1f} x health RTT, {p50 / (gate * 1000):5.1f} x gate decision)"
    )


async def _baselines(client: TestClient[Any, Any], runtime: CampaignRuntime, campaign_id: str) -> tuple[float, float]:
    health: list[float] = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        response = await client.get("/v1/health")
        await response.read()
        health.append(time.perf_counter() - started)
    runner = runtime.campaigns[campaign_id]
    lead = placeholder_lead("lead-bench-baseline", "+12125550000")
    gate: list[float] = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        await runtime.services.gate.decide(contact_request("+12125550000", lead), runner.policy)
        gate.append(time.perf_counter() - started)
    return statistics.median(health), statistics.median(gate)


async def run(leads: int, burst: int, agents: int, gate_now: datetime, dial_mode: str, ringing: int) -> None:
    async with bench_stack() as stack:
        settings, instance = stack.settings, stack.instance
        async with dialer_services(
            settings, gate_clock=lambda: gate_now, timeouts=CallTimeouts(agent_ring=15.0), drain_seconds=10
        ) as services:
            runtime = services.campaigns
            assert runtime is not None, "dialer_services runs without the campaign runtime"
            await services.dnc.set_list_date("federal", gate_now.date())
            crm = {"Authorization": f"Bearer {(await services.store.issue_token(TokenRole.CRM, label='bench')).secret}"}
            admin = {"Authorization":
                     f"Bearer {(await services.store.issue_token(TokenRole.ADMIN, label='bench')).secret}"}
            campaign_id = f"bench-{uuid.uuid4().hex[:8]}"
            agent_ids = [f"bench-agent-{n}" for n in range(agents)]
            await services.outbox.put_many([
                ("campaign_upsert", {"campaign_id": campaign_id, "name": "Web leads", "caller_id": "+18885550123",
                                     "dial_mode": dial_mode, "speed_to_lead": True}),
                *(("agent_upsert", {"agent_id": agent_id, "name": agent_id,
                                    "sip_endpoint": f"Local/{n + 1}@agent-sim"})
                  for n, agent_id in enumerate(agent_ids)),
            ])
            # Leads that ring until the dial times out: the pacer's lines in flight.
            background = [(f"lead-ringing-{n}-{campaign_id}", f"+1213{200 + n:03d}4000") for n in range(ringing)]
            await services.outbox.put_many([
                item for lead_id, phone in background for item in (
                    ("lead_upsert", {"lead_id": lead_id, "first_name": "Ringing", "phones": [phone], "state": "CA"}),
                    ("campaign_lead", campaign_lead_record(campaign_id, lead_id)))
            ])
            assert await services.outbox.flush(30)
            watch = DialWatch(runtime)
            async with TestClient(TestServer(services.app, host="127.0.0.1")) as client:
                for agent_id in agent_ids:
                    response = await client.post(f"/v1/agents/{agent_id}/login", json={"campaign_ids": [campaign_id]},
                                                 headers=admin)
                    assert response.status == 202, await response.text()
                for _ in range(600):  # the agents' legs answer and wait in their holding bridges
                    if all((s := runtime.agent_state(a)) is not None and s.state.value == "ready" for a in agent_ids):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise TimeoutError("the agents are not ready within 30 s")
                response = await client.post(f"/v1/campaigns/{campaign_id}/start", headers=crm)
                assert response.status == 202, await response.text()
                health, gate = await _baselines(client, runtime, campaign_id)
                if ringing:
                    for _ in range(600):  # the pacer's own lines ringing before the web leads arrive
                        if len(runtime.calls) >= min(ringing, agents):
                            break
                        await asyncio.sleep(0.05)
                print(f"Asterisk {instance.install.version}; {agents} ready Local agent(s), {dial_mode}, "
                      f"{len(runtime.calls)} line(s) ringing, tick {runtime.settings.tick_seconds} s; "
                      f"gate clock {gate_now.isoformat()}")
                print(f"baselines (medians of {SAMPLES}): GET /v1/health round trip {health * 1000:.2f} ms, "
                      f"one gate decision {gate * 1000:.2f} ms")
                numbers = busy_numbers()

                async def post(index: int) -> Posted:
                    body = {"first_name": "Web", "last_name": f"Lead {index}", "phone": next(numbers),
                            "source": "web_form", "campaign_id": campaign_id, "state": "NY"}
                    sent = time.time()
                    response = await client.post("/v1/leads", json=body, headers=crm)
                    answer = await response.json()
                    answered = time.time()
                    assert response.status == 201 and answer["speed_to_lead"], answer
                    return Posted(sent, answered, answer["lead_id"])

                phases = [("one at a time", 1)] + ([(f"bursts of {burst} concurrent posts", burst)] if burst > 1 else [])
                index = 0
                for title, width in phases:
                    to_response: list[float] = []
                    to_requested: list[float] = []
                    to_accepted: list[float] = []
                    started = time.perf_counter()
                    done = 0
                    while done < leads:
                        group = min(width, leads - done)
                        posted = await asyncio.gather(*(post(index + n) for n in range(group)))
                        index += group
                        done += group
                        ids = [p.lead_id for p in posted]
                        await watch.wait_dialed(ids, 60)
                        await watch.wait_ended(ids, 60)
                        for p in posted:
                            dialed = watch.dialed[p.lead_id]
                            to_response.append(p.answered_at - p.sent_at)
                            to_requested.append(dialed.requested_at - p.sent_at)
                            to_accepted.append(dialed.accepted_at - p.sent_at)
                    elapsed = time.perf_counter() - started
                    print(f"\n{title}: {leads} web leads in {elapsed:.1f} s, all dialed; "
                          f"from the POST sent to:")
                    print(_line("HTTP response (201)", to_response, health, gate))
                    print(_line("call requested (requested_at)", to_requested, health, gate))
                    print(_line("originate accepted by Asterisk", to_accepted, health, gate))
                status = runtime.campaign_status(campaign_id)
                assert status is not None
                print(f"\ncampaign counters: {dict(status.counters)}; gate blocks: {status.blocked or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=200, help="web leads per phase (default 200)")
    parser.add_argument("--burst", type=int, default=1,
                        help="also post in bursts of K concurrent posts (a second phase; default: off)")
    parser.add_argument("--agents", type=int, default=1, help="ready Local-channel agents (default 1)")
    parser.add_argument("--dial-mode", choices=["progressive", "predictive", "power", "preview"],
                        default="progressive", help="the campaign's dial mode (default progressive)")
    parser.add_argument("--ringing", type=int, default=0,
                        help="campaign leads that ring until the dial times out, dialed by the pacer (default 0)")
    parser.add_argument("--gate-time", type=datetime.fromisoformat, default=GATE_NOW,
                        help=f"the gate's fixed clock, ISO 8601 with offset (default {GATE_NOW.isoformat()})")
    args = parser.parse_args()
    if args.gate_time.tzinfo is None:
        parser.error("--gate-time needs a UTC offset, e.g. 2026-11-24T17:00:00+00:00")
    configure_logging("warning")
    asyncio.run(run(args.leads, args.burst, args.agents, args.gate_time, args.dial_mode, args.ringing))


if __name__ == "__main__":
    main()
