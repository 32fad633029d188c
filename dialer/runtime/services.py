"""The IO services every kind of call executes its actions with, built once by the
composition root (`dialer.serve`) and shared by the slices."""

from __future__ import annotations

from dataclasses import dataclass, field

from compliance_rules.gate import ComplianceGate
from compliance_rules.store import DncStore
from crm_bridge.outbox import RecordSink
from crm_bridge.store import CrmStore
from dialer.ari.client import AriClient
from dialer.ari.dispatch import Dispatcher
from dialer.ari.sounds import DialplanSounds
from dialer.runtime.admission import Admitter
from dialer.runtime.agent_events import AgentEventHub
from dialer.runtime.optout import OptOuts
from dialer.runtime.placement import NodePlacement, SingleNode
from dialer.runtime.recording import RecordingArchiver
from dialer.runtime.snapshots import SnapshotWriter


@dataclass(frozen=True)
class CallServices:
    ari: AriClient
    dispatcher: Dispatcher
    app: str
    """The Stasis application's name."""
    store: CrmStore
    records: RecordSink
    """Durable CRM writes (the outbox)."""
    snapshots: SnapshotWriter
    """Call rows, written behind the call flow."""
    gate: ComplianceGate
    dnc: DncStore
    agent_events: AgentEventHub
    archiver: RecordingArchiver
    opt_outs: OptOuts
    sounds: DialplanSounds
    admission: Admitter
    """The node's admission control: every call the dialer places waits here when it is full."""
    placement: NodePlacement = field(default_factory=SingleNode)
    """Which node carries what (a cluster's `Placement`; one node: everything together)."""
