"""What a packet holds, as plain data (JSON values), between reading it and writing it. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_bridge.audit_chain import CHAINS, Checkpoint, Entry, Link
from evidence.subject import Subject


class SubjectNotFound(LookupError):
    """Nothing in the CRM matches the packet's subject."""


@dataclass(frozen=True)
class Segment:
    """A run of one chain from a covered entry to a signed checkpoint's head: full entries for the
    packet's rows, redacted links for everyone else's."""

    chain: str
    start_seq: int
    start_prev: str
    items: tuple[Entry | Link, ...]
    checkpoint_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain, "start_seq": self.start_seq, "start_prev": self.start_prev,
            "checkpoint_id": self.checkpoint_id,
            "items": [item.to_json() if isinstance(item, Entry) else {"seq": item.seq, "body_hash": item.body_hash}
                      for item in self.items],
        }


@dataclass
class EvidenceData:
    """Every row of the packet (plain JSON values), and the chain that vouches for them."""

    subject: Subject
    leads: list[dict[str, Any]] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    dispositions: list[dict[str, Any]] = field(default_factory=list)
    opt_outs: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)
    recording_accesses: list[dict[str, Any]] = field(default_factory=list)
    monitor_sessions: list[dict[str, Any]] = field(default_factory=list)
    recording_events: list[dict[str, Any]] = field(default_factory=list)
    """Legal holds set and released, purges (the recordings lifecycle's own log; not chained)."""
    messages: list[dict[str, Any]] | None = None
    """None when this database has no `messages` table (texting not installed)."""
    message_receipts: list[dict[str, Any]] = field(default_factory=list)
    opt_ins: list[dict[str, Any]] = field(default_factory=list)
    """A START after a texted opt-out: new consent (texting's `opt_ins`)."""
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    """The checkpoint signed for this packet."""
    trail_started_at: str | None = None
    collected_at: str = ""

    def chained_rows(self) -> dict[str, list[dict[str, Any]]]:
        """The rows of each chain the packet holds (chain name -> rows)."""
        by_table = {"calls": self.calls, "compliance_decisions": self.decisions, "dispositions": self.dispositions,
                    "opt_outs": self.opt_outs, "consent_records": self.consents, "recordings": self.recordings,
                    "recording_accesses": self.recording_accesses, "monitor_sessions": self.monitor_sessions,
                    "messages": self.messages or [], "message_receipts": self.message_receipts,
                    "opt_ins": self.opt_ins}
        return {spec.name: by_table[spec.table] for spec in CHAINS.values() if spec.table in by_table}


