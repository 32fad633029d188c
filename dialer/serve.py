"""Everything `dialer serve` runs, assembled in one place: CRM store and outbox, the gate, the
ARI client, event stream and dispatcher, the controller, and the HTTP app.

Start-up: migrate the CRM schema, open the outbox (it delivers what a previous run left),
connect to ARI, reconcile (hang up our orphaned channels, close CRM rows left open).
Shutdown (two steps): stop taking calls and let live ones finish within a deadline, hang up
the rest, then flush the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from compliance_rules.audit import AuditSink, CoalescingAuditSink, OutboxAuditSink
from compliance_rules.gate import ComplianceGate
from compliance_rules.model import Decision
from compliance_rules.ruleset import RuleDataError, load_rulebook
from compliance_rules.store import DncStore
from crm_bridge.migrate import MigrationError, ensure_schema
from crm_bridge.outbox import Outbox
from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import CrmStore
from dialer.api.app import ApiDependencies, build_app
from dialer.ari.client import AriClient, AriConfig
from dialer.ari.dispatch import Dispatcher
from dialer.ari.events import EventStream, Snapshot
from dialer.ari.models import Event
from dialer.campaign.runtime import CampaignRuntime, CampaignSettings
from dialer.click_to_call.machine import CallTimeouts
from dialer.click_to_call.runtime import Controller, ControllerConfig
from dialer.metrics import Metrics, set_all
from dialer.monitor.runtime import MonitorService, MonitorSettings
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.gate import gate_options
from dialer.runtime.snapshots import SnapshotWriter
from dialer.settings import Settings
from recordings.api import RecordingReader
from recordings.crypto import Keyring

log = structlog.get_logger(__name__)


class CountingAuditSink:
    """Counts the gate's decisions by result and reason for /metrics, then records them."""

    def __init__(self, inner: AuditSink, metrics: Metrics) -> None:
        self._inner = inner
        self._decisions = metrics.counter("dialer_gate_decisions_total", "Compliance gate decisions, by result")
        self._reasons = metrics.counter("dialer_gate_blocks_total", "Reasons of blocked gate decisions")

    async def record(self, decisions: Sequence[Decision]) -> None:
        await self._inner.record(decisions)
        for decision in decisions:
            self._decisions.inc(allowed=str(decision.allowed).lower())
            for code in decision.codes:
                self._reasons.inc(reason=code.value)


def _collect(
    registry: Metrics, outbox: Outbox, stream: EventStream, controller: Controller, campaigns: CampaignRuntime
) -> None:
    stats = outbox.stats()
    registry.gauge("dialer_outbox_pending", "CRM records waiting to reach PostgreSQL").set(stats.pending)
    registry.gauge("dialer_outbox_rejected", "CRM records PostgreSQL refused (kept aside)").set(stats.rejected)
    registry.gauge("dialer_outbox_delivered", "CRM records delivered since start").set(stats.delivered)
    registry.gauge("dialer_ari_connected", "1 while the ARI event WebSocket is connected").set(int(stream.connected))
    registry.gauge("dialer_ari_generation", "ARI connections made since start").set(stream.generation)
    registry.gauge("dialer_click_to_call_active", "Click-to-call calls in progress").set(controller.active_calls)
    if controller.snapshots is not None:
        registry.gauge("dialer_call_snapshots_backlog", "Call snapshots not yet in the outbox").set(
            controller.snapshots.backlog
        )
    agents = registry.gauge("dialer_campaign_agents", "Agents of a running campaign, by state")
    for campaign_id in list(campaigns.campaigns):
        status = campaigns.campaign_status(campaign_id)
        if status is None:
            continue
        registry.gauge("dialer_campaign_lines", "Lines ringing for a campaign").set(status.lines, campaign=campaign_id)
        registry.gauge("dialer_campaign_hopper", "Leads ready in a campaign's hopper").set(
            status.hopper, campaign=campaign_id
        )
        registry.gauge("dialer_campaign_abandon_rate", "30-day abandon rate (47 CFR 64.1200(a)(7))").set(
            status.abandon_rate, campaign=campaign_id
        )
        set_all(agents, {state: float(count) for state, count in status.agents.items()}, "state", campaign=campaign_id)


class StartupError(Exception):
    """The dialer cannot start; one sentence saying what to do."""


@dataclass
class DialerServices:
    settings: Settings
    store: CrmStore
    outbox: Outbox
    dnc: DncStore
    gate: ComplianceGate
    ari: AriClient
    stream: EventStream
    controller: Controller
    agent_events: AgentEventHub
    app: web.Application
    campaigns: CampaignRuntime | None = None
    monitors: MonitorService | None = None


async def _migrated_store(dsn: str) -> CrmStore:
    try:
        await ensure_schema(dsn)
        return await CrmStore.open(dsn)
    except (DatabaseUnavailable, MigrationError) as error:
        raise StartupError(str(error)) from None


@contextlib.asynccontextmanager
async def dialer_services(
    settings: Settings,
    *,
    gate_clock: Callable[[], datetime] | None = None,
    timeouts: CallTimeouts | None = None,
    drain_seconds: float = 10.0,
    ari_connect_timeout: float = 15.0,
    campaign_overrides: Mapping[str, object] | None = None,
    monitor_overrides: Mapping[str, object] | None = None,
) -> AsyncIterator[DialerServices]:
    store = await _migrated_store(settings.pg_dsn)
    redis = aioredis.from_url(settings.redis_url)
    try:
        async with Outbox(settings.state_dir, settings.pg_dsn) as outbox:
            dnc = DncStore(redis, settings.redis_prefix)
            try:
                rulebook = load_rulebook()
            except RuleDataError as error:
                # Fail closed: with no rule data every decision is blocked (gate_unavailable).
                log.error("rule_data_unavailable", error=str(error))
                rulebook = None
            metrics = Metrics()
            sink = CoalescingAuditSink(CountingAuditSink(OutboxAuditSink(outbox), metrics))
            options = gate_options(settings)
            gate = (
                ComplianceGate(dnc, sink, rulebook, options, clock=gate_clock)
                if gate_clock
                else ComplianceGate(dnc, sink, rulebook, options)
            )
            agent_events = AgentEventHub()
            keyring = Keyring.load_or_create(settings.recording_keys_dir)
            async with AriClient(AriConfig.from_settings(settings)) as ari:
                controller_ref: list[Controller] = []
                campaigns_ref: list[CampaignRuntime] = []
                monitors_ref: list[MonitorService] = []

                async def unrouted(event: Event, generation: int) -> None:
                    # Events no call owns (agent-session and inbound StasisStart, ...) go to both.
                    if controller_ref:
                        await controller_ref[0].on_unrouted(event, generation)
                    if campaigns_ref:
                        await campaigns_ref[0].on_unrouted(event, generation)
                    if monitors_ref:
                        await monitors_ref[0].on_unrouted(event, generation)

                async with Dispatcher(unrouted) as dispatcher:
                    controller = Controller(
                        ari,
                        dispatcher,
                        gate,
                        store,
                        outbox,
                        agent_events,
                        ControllerConfig(
                            app=settings.ari_app,
                            recordings_dir=settings.recordings_dir,
                            trunk_endpoint=settings.trunk_endpoint,
                            default_caller_id=settings.caller_id,
                            timeouts=timeouts or CallTimeouts(),
                            keyring=keyring,
                        ),
                    )
                    controller_ref.append(controller)
                    snapshots = SnapshotWriter(outbox)
                    controller.snapshots = snapshots
                    finished = metrics.counter("dialer_calls_finished_total", "Click-to-call calls ended, by outcome")
                    controller.finished_listeners.append(
                        lambda record: finished.inc(outcome=record.outcome.value if record.outcome else "unknown")
                    )
                    campaigns = CampaignRuntime(
                        ari,
                        dispatcher,
                        gate,
                        dnc,
                        store,
                        outbox,
                        agent_events,
                        redis,
                        CampaignSettings(
                            app=settings.ari_app,
                            recordings_dir=settings.recordings_dir,
                            trunk_endpoint=settings.trunk_endpoint,
                            default_caller_id=settings.caller_id,
                            redis_key=f"{settings.redis_prefix}agents",
                            keyring=keyring,
                            **(campaign_overrides or {}),  # type: ignore[arg-type]
                        ),
                    )
                    campaigns_ref.append(campaigns)
                    campaigns.snapshots = snapshots
                    monitors = MonitorService(
                        ari, dispatcher, outbox, [controller, campaigns],
                        MonitorSettings(
                            app=settings.ari_app, trunk_endpoint=settings.trunk_endpoint,
                            **(monitor_overrides or {}),  # type: ignore[arg-type]
                        ),
                    )
                    monitors_ref.append(monitors)

                    async def on_connected(generation: int, snapshot: Snapshot) -> None:
                        await controller.on_connected(generation, snapshot)
                        await campaigns.on_connected(generation, snapshot)
                        await monitors.on_connected(generation, snapshot)

                    stream = EventStream(ari, dispatcher, on_connected=on_connected)
                    metrics.collectors.append(
                        lambda registry: _collect(registry, outbox, stream, controller, campaigns)
                    )
                    async with (
                        controller.running(), campaigns.running(), monitors.running(), asyncio.TaskGroup() as tasks
                    ):
                        stream_task = tasks.create_task(stream.run(), name="ari-events")
                        snapshot_task = tasks.create_task(snapshots.run(), name="call-snapshots")
                        try:
                            async with asyncio.timeout(ari_connect_timeout):
                                await stream.wait_connected()
                        except TimeoutError:
                            await stream.stop()
                            raise StartupError(
                                f"Asterisk's ARI at {settings.ari_url} does not answer: start it "
                                "('dialer asterisk start') or set DIALER_ARI_PORT."
                            ) from None
                        with contextlib.suppress(Exception):
                            closed = await controller.close_abandoned_rows()
                            if closed:
                                log.warning("open_calls_closed_at_start", count=closed)
                        app = build_app(
                            ApiDependencies(
                                store=store, records=outbox, dnc=dnc, calls=controller, agent_events=agent_events,
                                campaigns=campaigns, monitors=monitors,
                                recordings=RecordingReader(settings.recordings_dir, keyring),
                                metrics=metrics,
                            )
                        )
                        try:
                            yield DialerServices(
                                settings, store, outbox, dnc, gate, ari, stream, controller, agent_events, app,
                                campaigns, monitors,
                            )
                        finally:
                            await monitors.drain(drain_seconds)
                            await campaigns.drain(drain_seconds)
                            await controller.drain(drain_seconds)
                            await stream.stop()
                            stream_task.cancel()
                            await snapshots.drain(drain_seconds)
                            snapshot_task.cancel()
            await outbox.flush(drain_seconds)
    finally:
        await redis.aclose()
        await store.close()
