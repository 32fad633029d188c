"""Click-to-call latency on the real stack (not a test): API request -> agent ringing, and lead
answer -> lead bridged, at 1 and at N concurrent calls, with Local-channel agents and leads in
the simulated network. Each figure is printed next to a baseline measured in the same run:
the bare ARI round trip (GET /asterisk/info) and a bare addChannel on a fresh bridge.

It starts its own Asterisk instance on free ports, its own PostgreSQL database and a private
Redis key prefix (database 14), and removes them when it ends (scripts/bench_stack.py).

    .venv/bin/python scripts/bench_click_to_call.py [--concurrency 1 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from bench_stack import bench_stack, percentile

from dialer.ari.client import AriClient
from dialer.click_to_call.machine import CallTimeouts
from dialer.click_to_call.record import CallRecord
from dialer.click_to_call.requests import DialRequest
from dialer.logs import configure_logging
from dialer.runtime.errors import ComplianceBlocked
from dialer.serve import dialer_services

GATE_NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # inside every calling window


def _line(name: str, values: Sequence[float], baseline: float) -> str:
    p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
    return (
        f"  {name:<34} n={len(values):<4} p50={p50:8.1f} ms  p99={p99:8.1f} ms"
        f"  (p50 = {p50 / (baseline * 1000):6.1f} x baseline {baseline * 1000:.1f} ms)"
    )


async def _baselines(ari: AriClient, app: str, samples: int = 50) -> tuple[float, float]:
    info: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        await ari.asterisk_info()
        info.append(time.perf_counter() - started)
    bridge_id = f"bench-{uuid.uuid4().hex[:8]}"
    await ari.create_bridge(bridge_id)
    add: list[float] = []
    try:
        # A channel in the app to move: a Local channel answered by the simulated agents.
        channel_id = f"bench-{uuid.uuid4().hex[:8]}"
        await ari.originate(channel_id, "Local/1@agent-sim", app=app, ring_timeout=10)
        await asyncio.sleep(1.0)
        for _ in range(samples):
            started = time.perf_counter()
            await ari.add_channel(bridge_id, channel_id)
            add.append(time.perf_counter() - started)
            await ari.remove_channel(bridge_id, channel_id)
        await ari.hangup(channel_id)
    finally:
        await ari.destroy_bridge(bridge_id)
    return statistics.median(info), statistics.median(add)


async def run(concurrencies: list[int], rounds: int, node: dict[str, int]) -> None:
    async with bench_stack() as stack:
        settings, instance = dataclasses.replace(stack.settings, **node), stack.instance
        async with dialer_services(
            settings, gate_clock=lambda: GATE_NOW, timeouts=CallTimeouts(agent_ring=15.0), drain_seconds=10
        ) as services:
            info_base, add_base = await _baselines(services.ari, settings.ari_app)
            print(f"Asterisk {instance.install.version}; baselines: ARI GET /asterisk/info "
                  f"{info_base * 1000:.1f} ms, bridge addChannel {add_base * 1000:.1f} ms (medians)")
            await services.dnc.set_list_date("federal", GATE_NOW.date())
            finished: dict[str, CallRecord] = {}
            progress = asyncio.Event()

            def on_finished(record: CallRecord) -> None:
                finished[record.call_id] = record
                progress.set()

            services.controller.finished_listeners.append(on_finished)
            width = max(concurrencies)
            agents = [f"bench-agent-{n}" for n in range(width)]
            for n, agent_id in enumerate(agents):
                await services.outbox.put(
                    "agent_upsert", {"agent_id": agent_id, "name": agent_id, "sip_endpoint": f"Local/{n + 1}@agent-sim"}
                )
            await services.outbox.flush(30)
            for concurrency in concurrencies:
                to_ringing: list[float] = []
                to_bridged: list[float] = []
                failures = 0
                queued = 0
                outcomes: dict[str, int] = {}
                blocked_counts: dict[str, int] = {}
                for _ in range(rounds):
                    placed: list[str] = []
                    for n in range(concurrency):
                        # A person in New York: 1 s of ringing, hangs up 3 s after answering.
                        try:
                            call = await services.controller.place_call(
                                DialRequest(agent_id=agents[n], phone="+12125551103")
                            )
                        except ComplianceBlocked as blocked:
                            # Under overload the gate may not decide in its budget: it blocks.
                            blocked_counts[str(blocked)] = blocked_counts.get(str(blocked), 0) + 1
                            continue
                        placed.append(call.call_id)
                        queued += call.status == "queued"
                    async with asyncio.timeout(120):
                        while not all(call_id in finished for call_id in placed):
                            progress.clear()
                            await progress.wait()
                    for call_id in placed:
                        record = finished[call_id]
                        outcome = record.outcome.value if record.outcome else "none"
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
                        if record.agent_ringing_at is None or record.bridged_at is None:
                            failures += 1
                            continue
                        assert record.lead_answered_at is not None
                        to_ringing.append((record.agent_ringing_at - record.requested_at).total_seconds())
                        to_bridged.append((record.bridged_at - record.lead_answered_at).total_seconds())
                node = services.controller.services.admission.policy.limits
                print(f"\n{concurrency} concurrent call(s), {rounds} round(s), {failures} call(s) not bridged, "
                      f"{queued} queued by admission control (node: {node.max_calls} calls, {node.max_setups} "
                      f"setups, {node.setups_per_second}/s), outcomes {outcomes}, "
                      f"blocked at request: {blocked_counts or 'none'}:")
                print(_line("API request -> agent ringing", to_ringing, info_base))
                print(_line("lead answer -> lead bridged", to_bridged, add_base))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--node-max-calls", type=int, default=40, help="admission: calls live on the node")
    parser.add_argument("--node-max-setups", type=int, default=8, help="admission: calls set up at once")
    parser.add_argument("--node-setups-per-second", type=int, default=10, help="admission: setups a second")
    args = parser.parse_args()
    configure_logging("warning")
    node = {"node_max_calls": args.node_max_calls, "node_max_setups": args.node_max_setups,
            "node_setups_per_second": args.node_setups_per_second}
    asyncio.run(run(args.concurrency, args.rounds, node))


if __name__ == "__main__":
    main()
