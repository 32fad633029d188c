"""Everything `dialer serve` runs, assembled in one place: the CRM store and outbox, the gate,
the ARI client, event stream and dispatcher, the call services every slice shares, the three
slices (click-to-call, campaign, monitor), and the HTTP app.

Start-up: migrate the CRM schema, open the outbox (it delivers what a previous run left),
connect to ARI, reconcile (each slice hangs up its orphaned channels; CRM rows left open are
closed). ARI connect and unrouted events fan out over the list of slices.
Shutdown (two steps): each slice stops taking work and lets live work finish within a
deadline, then hurries the rest; then the snapshots and the outbox are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import Histogram
from redis.exceptions import RedisError

from compliance_rules.audit import AuditSink, CoalescingAuditSink
from compliance_rules.gate import ComplianceGate
from compliance_rules.model import ContactRequest, Decision
from compliance_rules.policy import CampaignPolicy
from compliance_rules.ruleset import RuleDataError, load_rulebook
from compliance_rules.store import DncStore
from crm_bridge.audit_keys import AuditKeyError, AuditSigningKey
from crm_bridge.audit_log import PeriodicCheckpoints, chain_signed
from crm_bridge.kinds import RecordKind
from crm_bridge.migrate import MigrationError, ensure_schema
from crm_bridge.outbox import Outbox
from crm_bridge.pg import DatabaseNotAnswering, DatabaseUnavailable, connect
from crm_bridge.store import CrmStore
from dialer.api.events import EventHub
from dialer.api.health import AriCheck, RecordingsCheck, StartCheck
from dialer.api.http import ApiDependencies
from dialer.app import build_app
from dialer.ari.client import AriClient, AriConfig
from dialer.ari.dispatch import Dispatcher
from dialer.ari.events import EventStream, Snapshot
from dialer.ari.models import Event
from dialer.ari.sounds import DialplanSounds
from dialer.campaign.dialing import CampaignSettings
from dialer.campaign.record import CampaignCallRecord
from dialer.campaign.runtime import CampaignRuntime
from dialer.click_to_call.machine import CallTimeouts
from dialer.click_to_call.record import CallRecord
from dialer.click_to_call.runtime import ClickToCallRuntime, ClickToCallSettings
from dialer.commands import CLI_OUTBOX
from dialer.metrics import Metrics, set_all
from dialer.monitor.runtime import MonitorRuntime, MonitorSettings
from dialer.provision.trunk_health import TrunkHealth
from dialer.provision.trunks import TrunkRouter
from dialer.runtime.admission import AdmissionLimits, Admitter, NodeAdmission
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.cluster import ClusterAdmission, ClusterAri, ClusterStreams, node_pings
from dialer.runtime.gate import OutboxAuditSink, gate_options
from dialer.runtime.ids import agent_states_key, running_campaigns_key
from dialer.runtime.lease import ControllerLease
from dialer.runtime.optout import OptOuts
from dialer.runtime.outage import Outage
from dialer.runtime.placement import NodePlacement, Placement, SingleNode
from dialer.runtime.reconcile import close_open_calls, outbox_delivered, restore_opt_outs
from dialer.runtime.recording import RecordingArchiver
from dialer.runtime.retention import RetentionPurge
from dialer.runtime.services import CallServices
from dialer.runtime.slice import RuntimeSlice
from dialer.runtime.snapshots import SnapshotWriter
from dialer.settings import Settings
from dialer.texting.runtime import TextingRuntime, texting_for
from dialer.web.users import UserStore
from dialer.webhooks import WebhookDispatcher, WebhookOptions
from evidence.recordings import LifecycleLegalHolds, recording_audio
from evidence.service import EvidenceService
from recordings.crypto import Keyring, RecordingKeysMissing
from recordings.lifecycle import last_verification
from recordings.reader import RecordingReader
from recordings.storage import LocalStorage

log = structlog.get_logger(__name__)


class TimedGate(ComplianceGate):
    """The gate, with the time of each call in `dialer_gate_decision_seconds`."""

    def __init__(self, *args: Any, histogram: Histogram, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._histogram = histogram

    async def decide_many(self, requests: Sequence[ContactRequest], policy: CampaignPolicy,
                          now: datetime | None = None, *, reserve_attempts: bool = False) -> list[Decision]:
        started = time.perf_counter()
        try:
            return await super().decide_many(requests, policy, now, reserve_attempts=reserve_attempts)
        finally:
            self._histogram.labels(batch=str(len(requests) > 1).lower()).observe(time.perf_counter() - started)


class TimedAriClient(AriClient):
    """The ARI client, with the time Asterisk takes to accept an originate or a dial in
    `dialer_originate_seconds`."""

    histogram: Histogram | None = None

    async def originate(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().originate(*args, **kwargs)
        finally:
            if self.histogram is not None:
                self.histogram.labels(request="originate").observe(time.perf_counter() - started)

    async def dial(self, channel_id: str, *, ring_timeout: int, caller: str | None = None) -> None:
        started = time.perf_counter()
        try:
            await super().dial(channel_id, ring_timeout=ring_timeout, caller=caller)
        finally:
            if self.histogram is not None:
                self.histogram.labels(request="dial").observe(time.perf_counter() - started)


class TimedClusterAri(TimedAriClient, ClusterAri):
    """A cluster's ARI client (`[[nodes]]`), timed as `TimedAriClient`."""


def _limits(max_calls: int, max_setups: int, setups_per_second: int) -> AdmissionLimits:
    return AdmissionLimits(max_calls=max_calls, max_setups=max_setups, setups_per_second=setups_per_second)


def _ari_and_admission(settings: Settings) -> tuple[AriClient, Admitter, NodePlacement]:
    """One node's client and admission (the settings' ARI), or, with `[[nodes]]`, the cluster's."""
    if not settings.nodes:
        return (TimedAriClient(AriConfig.from_settings(settings)),
                NodeAdmission(_limits(settings.node_max_calls, settings.node_max_setups,
                                      settings.node_setups_per_second)), SingleNode())
    placement = Placement(node.name for node in settings.nodes)
    admission = ClusterAdmission(
        {node.name: _limits(node.max_calls, node.max_setups, node.setups_per_second) for node in settings.nodes},
        placement)
    clients = {node.name: AriClient(AriConfig(url=node.ari_url, user=node.ari_user,
                                              password=node.ari_password or settings.ari_password,
                                              app=settings.ari_app))
               for node in settings.nodes}
    return TimedClusterAri(clients, placement, admission), admission, placement


def _observe_call(metrics: Metrics, record: CallRecord) -> None:
    """A finished click-to-call's figures (answer to bridge, the time a person waits in silence)."""
    if record.lead_answered_at is not None and record.bridged_at is not None:
        metrics.answer_to_bridge_seconds.labels(kind="click_to_call").observe(
            max(0.0, (record.bridged_at - record.lead_answered_at).total_seconds()))


def _observe_campaign_call(metrics: Metrics, record: CampaignCallRecord) -> None:
    """A finished campaign call's answer-to-bridge: the silence 47 CFR 64.1200(a)(7) limits to 2 s
    after the greeting (measured here from the answer, as a person hears it)."""
    if record.answered_at is not None and record.bridged_at is not None:
        metrics.answer_to_bridge_seconds.labels(kind="campaign").observe(max(0.0, record.bridged_at - record.answered_at))


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
    registry: Metrics, outbox: Outbox, stream: EventStream | ClusterStreams, snapshots: SnapshotWriter, calls: ClickToCallRuntime,
    campaigns: CampaignRuntime, archiver: RecordingArchiver, trunks: TrunkRouter, retention: RetentionPurge,
) -> None:
    stats = outbox.stats()
    registry.gauge("dialer_outbox_pending", "CRM records waiting to reach PostgreSQL").set(stats.pending)
    registry.gauge("dialer_outbox_rejected", "CRM records PostgreSQL refused (kept aside)").set(stats.rejected)
    registry.gauge("dialer_outbox_delivered", "CRM records delivered since start").set(stats.delivered)
    registry.gauge("dialer_ari_connected", "1 while the ARI event WebSocket is connected").set(int(stream.connected))
    registry.gauge("dialer_ari_generation", "ARI connections made since start").set(stream.generation)
    registry.gauge("dialer_click_to_call_active", "Click-to-call calls in progress").set(calls.active_calls)
    registry.gauge("dialer_call_snapshots_backlog", "Call snapshots not yet in the outbox").set(snapshots.backlog)
    admission = calls.services.admission
    nodes: dict[str, NodeAdmission] = {}
    if isinstance(admission, ClusterAdmission):
        nodes = admission.nodes
    elif isinstance(admission, NodeAdmission):
        nodes = {"": admission}
    for name, node in nodes.items():
        labels = {"node": name} if name else {}
        registry.gauge("dialer_node_calls", "Calls this node carries (admission control)").set(
            node.policy.calls, **labels)
        registry.gauge("dialer_node_setups", "Calls being set up on this node").set(node.policy.setups, **labels)
        registry.gauge("dialer_node_waiting", "Calls waiting for the node's admission").set(node.waiting, **labels)
        registry.gauge("dialer_node_ari_rtt_seconds", "ARI round trip, as the node's load signal").set(
            node.policy.rtt, **labels)
        if isinstance(stream, ClusterStreams):
            registry.gauge("dialer_node_connected", "1 while a cluster node's ARI events are connected").set(
                int(stream.node_connected(name)), **labels)
    now = time.time()
    for trunk, state in trunks.status(now).items():
        registry.gauge("dialer_trunk_up", "1 while a carrier trunk takes calls (reachable, not in its 503 cool-down)").set(
            int(state == "up"), trunk=trunk)
        registry.gauge("dialer_trunk_calls", "Calls on a carrier trunk now (counted against its max_channels)").set(
            trunks.active(trunk), trunk=trunk)
    _collect_archive(registry, retention)
    registry.gauge("dialer_recordings_pending", "Recordings in Asterisk's spool not yet archived (last sweep)").set(
        archiver.pending)
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


def _collect_archive(registry: Metrics, retention: RetentionPurge) -> None:
    """The archive's health: the last `dialer recording verify` (its figures file, one small read)
    and the scheduled purge. An alert on the verification's age catches a timer that stopped."""
    figures = last_verification(LocalStorage(retention.archive_dir))
    if figures is not None:
        registry.gauge("dialer_recordings_last_verification_timestamp_seconds",
                       "When the last `dialer recording verify` finished (Unix time)").set(
            figures.finished_at.timestamp())
        registry.gauge("dialer_recordings_last_verification_checked",
                       "Recordings the last verification re-read").set(figures.checked)
        problems = registry.gauge("dialer_recordings_last_verification_problems",
                                  "What the last verification found wrong, by kind (missing, damaged, orphaned)")
        set_all(problems, {"missing": figures.missing, "damaged": figures.damaged, "orphaned": figures.orphaned},
                "kind")
    registry.gauge("dialer_recordings_purged", "Recordings the scheduled retention purge destroyed since start").set(
        retention.purged_total)
    if retention.last_run_at is not None:
        registry.gauge("dialer_recordings_last_purge_timestamp_seconds",
                       "When the scheduled retention purge last completed (Unix time)").set(retention.last_run_at)


async def _probe(admission: Admitter, ari: AriClient) -> None:
    if isinstance(admission, NodeAdmission):
        await admission.probe(ari.asterisk_info)


async def _resume_after(reconciled: asyncio.Task[None], campaigns: CampaignRuntime) -> None:
    """A takeover: the previous controller's campaigns start again once its rows are closed (its
    leads followed up), so no lead of a call it left is dialed before that call is closed."""
    await asyncio.shield(reconciled)
    try:
        await campaigns.resume_running()
    except Exception as error:
        log.error("campaigns_not_resumed", error=repr(error))


RECONCILE_RETRY_SECONDS = 5.0


async def _reconcile_rows(
    store: CrmStore, outbox: Outbox, dnc: DncStore, campaigns: CampaignRuntime, monitors: MonitorRuntime,
    texting: TextingRuntime, started_at: datetime, *, migrated: bool, dsn: str,
) -> None:
    """What a dead controller left open in the CRM is closed (its unfinished texts are taken
    up: sent after the gate, or closed when they may have gone), and the Redis opt-out list is
    rebuilt from the CRM's opt-outs; retried until PostgreSQL (and Redis) answer, so the dialer
    starts and takes calls meanwhile (its writes wait in the outbox). A start with PostgreSQL down
    first applies the pending migrations, once it answers."""
    if not migrated:
        await _migrate_when_answering(dsn)
    outage = Outage("start_reconciliation_waiting")
    while True:
        try:
            closed = await close_open_calls(store, outbox, before=started_at)
            leads = await campaigns.follow_up_closed_calls(closed)
            sessions = await monitors.close_left_open(started_at)
            restored = await restore_opt_outs(store, dnc, state_dir=outbox.state_dir,
                                             outboxes=(outbox.name, CLI_OUTBOX))
            # The dead process's last text snapshots may be only in the outbox: a `sending` row
            # read as `queued` would send a text twice.
            await outbox_delivered(outbox.state_dir, outbox.name, RecordKind.MESSAGE)
            texts_queued, texts_closed = await texting.take_up_left(started_at)
        except (DatabaseUnavailable, ConnectionError, OSError, TimeoutError, RedisError) as error:
            outage.failed(log, error)
            await asyncio.sleep(RECONCILE_RETRY_SECONDS)
            continue
        outage.recovered(log)
        if closed or sessions or texts_queued or texts_closed:
            log.warning("open_rows_closed_at_start", calls=len(closed), campaign_leads=leads, monitor_sessions=sessions,
                        texts_queued_again=texts_queued, texts_closed=texts_closed)
        log.info("opt_outs_restored", numbers=restored)
        return


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
    stream: EventStream | ClusterStreams
    """The event connection (a cluster's: one per node)."""
    controller: ClickToCallRuntime
    agent_events: AgentEventHub
    app: web.Application
    campaigns: CampaignRuntime | None = None
    monitors: MonitorRuntime | None = None
    keyring: Keyring | None = None
    """Seals the archived recordings."""
    archiver: RecordingArchiver | None = None
    texting: TextingRuntime | None = None
    audit_key: AuditSigningKey | None = None
    """Signs the audit trail's checkpoints and the evidence packets."""
    webhooks: WebhookDispatcher | None = None
    """Sends the queued webhook deliveries (its `options.public_url` makes recording links)."""

    @property
    def calls(self) -> ClickToCallRuntime:
        """The click-to-call slice (`controller` is its older name)."""
        return self.controller


async def _audit_key(settings: Settings, *, database_answers: bool) -> AuditSigningKey:
    """The audit signing key; refused (StartupError) when missing once the trail has been signed.

    With PostgreSQL down we cannot ask whether the trail was signed, so only an existing key is
    used: a new one might orphan every earlier checkpoint."""
    signed = True
    if database_answers:
        conn = await connect(settings.pg_dsn)
        try:
            signed = await chain_signed(conn)
        finally:
            await conn.close()
    try:
        return AuditSigningKey.load_or_create(settings.audit_keys_dir, chain_signed=signed)
    except AuditKeyError as error:
        if not database_answers:
            raise StartupError(f"PostgreSQL does not answer and there is no audit signing key in "
                               f"{settings.audit_keys_dir}: start PostgreSQL for the first start") from None
        raise StartupError(str(error)) from None


async def _migrated_store(dsn: str) -> tuple[CrmStore, bool]:
    """The CRM store, and whether PostgreSQL answered. A server that does not answer at all does not
    stop the start: the pool connects lazily, writes wait in the outbox, the API answers 503 for what
    needs the database, and `_migrate_when_answering` applies pending migrations once it is back.
    A refused login, a bad URL or a failed migration stops it (a person must fix those)."""
    try:
        await ensure_schema(dsn)
        return await CrmStore.open(dsn), True
    except DatabaseNotAnswering as error:
        log.warning("postgresql_down_at_start", error=str(error))
        return await CrmStore.open(dsn, min_size=0), False
    except (DatabaseUnavailable, MigrationError) as error:
        raise StartupError(str(error)) from None


async def _migrate_when_answering(dsn: str) -> None:
    outage = Outage("start_migrations_waiting")
    while True:
        try:
            await ensure_schema(dsn)
        except DatabaseNotAnswering as error:
            outage.failed(log, error)
            await asyncio.sleep(RECONCILE_RETRY_SECONDS)
            continue
        except (DatabaseUnavailable, MigrationError) as error:
            log.error("migrations_failed", error=str(error))
            return
        outage.recovered(log)
        return


class SliceFanOut:
    """The ARI connection's hooks, fanned out over the slices in order."""

    def __init__(self) -> None:
        self.slices: list[RuntimeSlice[Any]] = []

    async def on_connected(self, generation: int, snapshot: Snapshot) -> None:
        for runtime in self.slices:
            await runtime.on_connected(generation, snapshot)

    async def on_unrouted(self, event: Event, generation: int) -> None:
        # Events no runner owns (an inbound call's StasisStart, a dead controller's leg, ...).
        for runtime in self.slices:
            await runtime.on_unrouted(event, generation)
        log.debug("unrouted_event", type=event.type, generation=generation)


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
    texting_overrides: Mapping[str, object] | None = None,
    webhook_options: WebhookOptions | None = None,
    lease: ControllerLease | None = None,
) -> AsyncIterator[DialerServices]:
    """Everything `dialer serve` runs. With `lease` (the controller lease, held): every ARI
    command checks it first (a controller whose lease is over issues nothing), and the running
    campaigns the previous controller left are started again once its rows are reconciled."""
    started_at = datetime.now(UTC)
    store, database_answers = await _migrated_store(settings.pg_dsn)
    try:
        audit_key = await _audit_key(settings, database_answers=database_answers)
    except BaseException:
        await store.close()
        raise
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
            timing = metrics.gate_decision_seconds
            gate = (
                TimedGate(dnc, sink, rulebook, options, clock=gate_clock, histogram=timing)
                if gate_clock
                else TimedGate(dnc, sink, rulebook, options, histogram=timing)
            )
            agent_events = EventHub()
            try:
                # Refused when the archive holds sealed recordings and their keys are not here: a
                # mistyped keys folder must not start a new key and orphan the old audio.
                keyring = Keyring.for_archive(settings.recording_keys_dir, settings.recordings_dir)
            except RecordingKeysMissing as error:
                raise StartupError(str(error)) from None
            fan_out = SliceFanOut()
            ari_client, admission, placement = _ari_and_admission(settings)
            if isinstance(ari_client, TimedAriClient):
                ari_client.histogram = metrics.originate_seconds
            if lease is not None:
                ari_client.fence = lease.check
            async with ari_client as ari, Dispatcher(fan_out.on_unrouted) as dispatcher:
                snapshots = SnapshotWriter(outbox)
                archiver = RecordingArchiver(ari, outbox, settings.recordings_dir, keyring, store)
                services = CallServices(
                    ari=ari, dispatcher=dispatcher, app=settings.ari_app, store=store, records=outbox,
                    snapshots=snapshots, gate=gate, dnc=dnc, agent_events=agent_events,
                    archiver=archiver,
                    opt_outs=OptOuts(dnc, outbox), sounds=DialplanSounds(ari), admission=admission,
                    placement=placement,
                )
                # One router for every kind of call: the trunks' channels and calls per second are shared.
                trunks = TrunkRouter(settings.trunks, time.time(), fallback_endpoint=settings.trunk_endpoint)
                calls = ClickToCallRuntime(services, ClickToCallSettings(
                    trunk_endpoint=settings.trunk_endpoint, default_caller_id=settings.caller_id,
                    timeouts=timeouts or CallTimeouts(), trunk_router=trunks,
                ))
                finished = metrics.counter("dialer_calls_finished_total", "Click-to-call calls ended, by outcome")
                calls.finished_listeners.append(
                    lambda record: finished.inc(outcome=record.outcome.value if record.outcome else "unknown")
                )
                calls.finished_listeners.append(lambda record: _observe_call(metrics, record))
                campaigns = CampaignRuntime(services, redis, CampaignSettings(
                    recordings_dir=settings.recordings_dir, trunk_endpoint=settings.trunk_endpoint,
                    default_caller_id=settings.caller_id, redis_key=agent_states_key(settings.redis_prefix),
                    trunk_router=trunks, caller_ids=settings.caller_ids,
                    caller_ids_required=settings.caller_ids_required, agency_timezone=settings.agency_timezone,
                    running_key=running_campaigns_key(settings.redis_prefix) if lease is not None else None,
                    **(campaign_overrides or {}),  # type: ignore[arg-type]
                ))
                campaigns.finished_listeners.append(lambda record: _observe_campaign_call(metrics, record))
                # An agent in a campaign session has its states recorded by it, not by click-to-call.
                calls.has_session = lambda agent_id: agent_id in campaigns.agents
                campaigns.web_lead_listeners.append(metrics.speed_to_lead_seconds.observe)
                monitors = MonitorRuntime(services, [calls, campaigns], MonitorSettings(
                    trunk_endpoint=settings.trunk_endpoint,
                    trunk_endpoints=tuple(trunk.endpoint for trunk in settings.trunks), **(monitor_overrides or {}),  # type: ignore[arg-type]
                ))
                texting = texting_for(services, settings, **(texting_overrides or {}))
                if lease is not None:
                    # An HTTP provider is not behind the ARI client's fence: texting checks it itself.
                    texting.fence = lease.check
                fan_out.slices = [calls, campaigns, monitors, texting]
                stream: EventStream | ClusterStreams = (
                    ClusterStreams(ari, dispatcher, fan_out.on_connected) if isinstance(ari, ClusterAri)
                    else EventStream(ari, dispatcher, on_connected=fan_out.on_connected))
                retention = RetentionPurge(settings.pg_dsn, settings.recordings_dir,
                                           settings.recordings_purge_every_hours * 3600.0)
                metrics.collectors.append(
                    lambda registry: _collect(registry, outbox, stream, snapshots, calls, campaigns, archiver, trunks,
                                              retention)
                )
                if lease is not None:
                    metrics.collectors.append(lambda registry: registry.gauge(
                        "dialer_controller_lease_token", "The fencing token of the controller lease this process holds",
                    ).set(float(lease.token or 0)))
                async with (
                    calls.running(), campaigns.running(), monitors.running(), texting.running(),
                    asyncio.TaskGroup() as tasks,
                ):
                    stream_task = tasks.create_task(stream.run(), name="ari-events")
                    snapshot_task = tasks.create_task(snapshots.run(), name="call-snapshots")
                    checkpoint_task = tasks.create_task(
                        PeriodicCheckpoints(settings.pg_dsn, audit_key).run(), name="audit-checkpoints")
                    trunk_task = tasks.create_task(TrunkHealth(ari, trunks).run(), name="trunk-health")
                    # Webhooks go out from their own task and pool: a CRM that is down never slows a call.
                    webhooks = WebhookDispatcher(settings.pg_dsn, webhook_options or WebhookOptions(
                        public_url=settings.http_public_url or f"http://{settings.http_host}:{settings.http_port}"),
                        metrics)
                    webhook_task = tasks.create_task(webhooks.run(), name="webhooks")
                    purge_task = tasks.create_task(retention.run(), name="retention-purge")
                    # Ended sessions and old wrong passwords do not pile up (dialer.web.users).
                    sessions_task = tasks.create_task(UserStore(store).purge_periodically(), name="session-purge")
                    try:
                        async with asyncio.timeout(ari_connect_timeout):
                            await stream.wait_connected()
                    except TimeoutError:
                        await stream.stop()
                        raise StartupError(
                            f"Asterisk's ARI at {settings.ari_url} does not answer: start it "
                            "('dialer asterisk start') or set DIALER_ARI_PORT."
                        ) from None
                    probe_task = tasks.create_task(
                        admission.probe(node_pings(ari)) if isinstance(admission, ClusterAdmission) and
                        isinstance(ari, ClusterAri) else _probe(admission, ari), name="node-probe")
                    sweep_task = tasks.create_task(archiver.run(
                        lambda: set(calls.runners) | set(campaigns.runners)), name="recording-sweep")
                    reconcile_task = tasks.create_task(
                        _reconcile_rows(store, outbox, dnc, campaigns, monitors, texting, started_at, migrated=database_answers,
                                        dsn=settings.pg_dsn), name="reconcile-rows"
                    )
                    if lease is not None:
                        tasks.create_task(_resume_after(reconcile_task, campaigns), name="resume-campaigns")
                    app = build_app(
                        ApiDependencies(store=store, records=outbox, dnc=dnc, agent_events=agent_events,
                                        metrics=metrics, readiness=[AriCheck(lambda: stream.connected),
                                                   StartCheck(reconcile_task.done),
                                                   RecordingsCheck(lambda: archiver.pending)],
                                        agency_timezone=settings.agency_timezone,
                                        gate_options=gate_options(settings), rulebook=gate.rulebook),
                        calls=calls, campaigns=campaigns, monitors=monitors,
                        recordings=RecordingReader(settings.recordings_dir, keyring), texting=texting,
                        lead_import_spool=settings.state_dir / "lead-imports",
                        evidence=EvidenceService(
                            settings.pg_dsn, audit_key,
                            functools.partial(recording_audio, RecordingReader(settings.recordings_dir, keyring)),
                            LifecycleLegalHolds()),
                        sip_credentials_file=settings.sip_credentials_file,
                        caller_id_check=settings.caller_id_check,
                        wake_webhooks=webhooks.wake,
                        sip_endpoints=ari,
                    )
                    try:
                        yield DialerServices(
                            settings, store, outbox, dnc, gate, ari, stream, calls, agent_events, app,
                            campaigns, monitors, keyring, archiver, texting, audit_key, webhooks,
                        )
                    finally:
                        for runtime in reversed(fan_out.slices):
                            await runtime.drain(drain_seconds)
                        await stream.stop()
                        stream_task.cancel()
                        await snapshots.drain(drain_seconds)
                        snapshot_task.cancel()
                        reconcile_task.cancel()
                        sweep_task.cancel()
                        probe_task.cancel()
                        checkpoint_task.cancel()
                        trunk_task.cancel()
                        webhook_task.cancel()
                        purge_task.cancel()
                        sessions_task.cancel()
            await outbox.flush(drain_seconds)
    finally:
        await redis.aclose()
        await store.close()
