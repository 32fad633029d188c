"""The audit trail's hash chains: which rows are chained, how a row becomes bytes, how entries
link, and how a run of entries is checked. Pure (no IO): the PostgreSQL side is
`crm_bridge.audit_log`, the offline check of an evidence packet is `evidence.verify`.

One chain per kind of record (`CHAINS`). An entry is a row as it was written, in canonical JSON
(RFC 8785, JSON Canonicalization Scheme: keys sorted, no whitespace, numbers in their shortest
form, so anyone can recompute the bytes with a standard library), with a header saying where it
stands:

    body_hash  = SHA-256( canonical(header) || 0x0A || row_json )
    entry_hash = SHA-256( prev_hash (32 bytes) || body_hash (32 bytes) )

header = {"chain", "seq", "key", "applied_at", "origin"}; the first entry's prev_hash is 64
zeros. Keeping `body_hash` apart from the link lets an evidence packet show the links between
one person's entries as bare hashes, without the other people's rows in between (a redacted
link), and still be checked end to end.

Adding a kind of record to the trail is one `ChainSpec` in `CHAINS` and its kind in
`CHAIN_OF_KIND` (texts went in that way); `crm_bridge.apply` appends whatever is listed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import rfc8785

from crm_bridge.kinds import RecordKind

ZERO_HASH = "0" * 64
CHECKPOINT_FORMAT = "dialer-audit-checkpoint/1"
# Largest integer RFC 8785 writes as a number (IEEE 754 double, exact); larger ones are strings.
_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class ChainSpec:
    """One chain: the table whose rows it holds, their key, and the columns that are evidence.

    `columns` are hashed; other columns of the table (bookkeeping such as `updated_at`, or
    fields another process maintains directly, such as a recording's legal hold or its
    re-wrapped key id) are not, so changing them is not tampering. `json_columns` come back
    from PostgreSQL as text and are parsed before hashing; `time_column` dates a row for
    `--since` and for "written before the trail began"."""

    name: str
    table: str
    key: str
    columns: tuple[str, ...]
    time_column: str
    json_columns: frozenset[str] = frozenset()

    @property
    def select_columns(self) -> str:
        return ", ".join(self.columns)


CALL_CHAIN = ChainSpec(
    "call", "calls", "call_id",
    ("call_id", "version", "direction", "lead_id", "agent_id", "campaign_id", "lead_number", "agent_endpoint",
     "caller_id", "requested_at", "agent_answered_at", "lead_ringing_at", "lead_answered_at", "bridged_at",
     "ended_at", "outcome", "hangup_cause", "hangup_cause_text", "sip_code", "ring_seconds", "talk_seconds",
     "total_seconds", "recording_id", "compliance_decision_id", "amd_result", "amd_cause", "greeting_ended_at",
     "safe_harbor_played", "abandoned", "trunk", "trunk_attempts"),
    "requested_at",
    # `trunk`/`trunk_attempts` (migration 0018) came later: entries written before them are
    # compared on the columns they hold (`project_row`), so they still verify.
    frozenset({"trunk_attempts"}),
)
DECISION_CHAIN = ChainSpec(
    "compliance_decision", "compliance_decisions", "decision_id",
    ("decision_id", "decided_at", "phone", "lead_id", "campaign_id", "purpose", "allowed", "reasons", "timezones",
     "local_times", "data_versions", "notices", "channel", "text_kind"),
    "decided_at",
    frozenset({"reasons", "timezones", "local_times", "data_versions", "notices"}),
)
OPT_OUT_CHAIN = ChainSpec(
    "opt_out", "opt_outs", "opt_out_id",
    ("opt_out_id", "phone", "source", "lead_id", "call_id", "created_at"),
    "created_at",
)
CONSENT_CHAIN = ChainSpec(
    "consent", "consent_records", "consent_id",
    ("consent_id", "lead_id", "kind", "phone", "obtained_at", "source", "evidence_ref", "expires_at", "revoked_at"),
    "created_at",
)
DISPOSITION_CHAIN = ChainSpec(
    "disposition", "dispositions", "disposition_id",
    ("disposition_id", "call_id", "lead_id", "agent_id", "campaign_id", "code", "notes", "callback_at",
     "stage_before", "stage_after", "disposed_at"),
    "disposed_at",
)
# Not retain_until, encryption_key_id or the storage place: retention policy, key rotation and
# archive moves change them legitimately; the audio's identity is its sha256.
RECORDING_CHAIN = ChainSpec(
    "recording", "recordings", "recording_id",
    ("recording_id", "call_id", "lead_id", "format", "duration_seconds", "size_bytes", "sha256", "recorded_at"),
    "recorded_at",
)
RECORDING_ACCESS_CHAIN = ChainSpec(
    "recording_access", "recording_accesses", "access_id",
    ("access_id", "recording_id", "call_id", "token_id", "role", "agent_id", "channel", "remote", "bytes",
     "accessed_at"),
    "accessed_at",
)
MONITOR_CHAIN = ChainSpec(
    "monitor_session", "monitor_sessions", "monitor_id",
    ("monitor_id", "version", "call_id", "call_kind", "agent_id", "campaign_id", "supervisor_endpoint",
     "requested_by", "state", "mode", "modes", "requested_at", "answered_at", "ended_at", "end_reason",
     "end_detail", "supervisor_cause"),
    "requested_at",
    frozenset({"modes"}),
)
PACKET_CHAIN = ChainSpec(
    "evidence_packet", "evidence_packets", "packet_id",
    ("packet_id", "created_at", "requested_by", "role", "channel", "subject", "manifest_sha256", "files",
     "recording_ids", "legal_hold", "checkpoint_id"),
    "created_at",
    frozenset({"subject", "recording_ids"}),
)

# Texts: every snapshot of a text (its delivery receipts' status included) and the receipts.
MESSAGE_CHAIN = ChainSpec(
    "message", "messages", "message_id",
    ("message_id", "version", "direction", "kind", "lead_id", "agent_id", "campaign_id", "from_number", "to_number",
     "body", "encoding", "segments", "template_id", "transport", "provider_message_id", "status", "status_detail",
     "delivery_status", "delivery_error", "delivered_at", "compliance_decision_id", "requested_by", "created_at",
     "sent_at"),
    "created_at",
)
MESSAGE_RECEIPT_CHAIN = ChainSpec(
    "message_receipt", "message_receipts", "receipt_id",
    ("receipt_id", "message_id", "provider_message_id", "status", "error", "received_at"),
    "received_at",
)
# A START/UNSTOP after a texted opt-out: consent evidence, like the consent records.
OPT_IN_CHAIN = ChainSpec(
    "opt_in", "opt_ins", "opt_in_id",
    ("opt_in_id", "phone", "source", "lead_id", "message_id", "created_at"),
    "created_at",
)
# Administrative changes (agents, campaigns, lists, tokens, webhook subscriptions): who changed
# what, the entity before and after (`crm_bridge.admin`).
ADMIN_CHANGE_CHAIN = ChainSpec(
    "admin_change", "admin_changes", "change_id",
    ("change_id", "changed_at", "actor", "actor_role", "channel", "action", "entity", "entity_id", "before",
     "after"),
    "changed_at",
    frozenset({"before", "after"}),
)

CHAINS: dict[str, ChainSpec] = {spec.name: spec for spec in (
    CALL_CHAIN, DECISION_CHAIN, OPT_OUT_CHAIN, CONSENT_CHAIN, DISPOSITION_CHAIN, RECORDING_CHAIN,
    RECORDING_ACCESS_CHAIN, MONITOR_CHAIN, PACKET_CHAIN, MESSAGE_CHAIN, MESSAGE_RECEIPT_CHAIN, OPT_IN_CHAIN,
    ADMIN_CHANGE_CHAIN,
)}

# The chain each kind of outbox record writes to (consents arrive inside `lead_upsert`).
CHAIN_OF_KIND: dict[RecordKind, ChainSpec] = {
    RecordKind.CALL: CALL_CHAIN,
    RecordKind.COMPLIANCE_DECISION: DECISION_CHAIN,
    RecordKind.OPT_OUT: OPT_OUT_CHAIN,
    RecordKind.DISPOSITION: DISPOSITION_CHAIN,
    RecordKind.RECORDING: RECORDING_CHAIN,
    RecordKind.RECORDING_ACCESS: RECORDING_ACCESS_CHAIN,
    RecordKind.MONITOR_SESSION: MONITOR_CHAIN,
    RecordKind.EVIDENCE_PACKET: PACKET_CHAIN,
    RecordKind.MESSAGE: MESSAGE_CHAIN,
    RecordKind.MESSAGE_RECEIPT: MESSAGE_RECEIPT_CHAIN,
    RecordKind.OPT_IN: OPT_IN_CHAIN,
}


class ChainFormatError(ValueError):
    """Chain data that cannot even be read (not a break in the chain: a malformed file or row)."""


# --- canonical form ----------------------------------------------------------------------------

def json_value(value: object) -> Any:
    """A PostgreSQL value (as asyncpg returns it) as a plain JSON value, the same way every time."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ChainFormatError("timestamps must carry a zone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    raise ChainFormatError(f"cannot put a {type(value).__name__} in the audit trail")


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON of a plain JSON value."""
    return rfc8785.dumps(value)


def canonical_row(spec: ChainSpec, row: Mapping[str, Any]) -> str:
    """The canonical JSON text of a table row's chained columns (as read from PostgreSQL)."""
    values: dict[str, Any] = {}
    for column in spec.columns:
        value = row[column]
        if column in spec.json_columns and isinstance(value, str):
            value = json.loads(value)
        values[column] = json_value(value)
    return canonical(values).decode()


def project_row(spec: ChainSpec, row: Mapping[str, Any], columns: Iterable[str]) -> str:
    """Like `canonical_row` but over `columns` only: an old entry is compared on the columns it
    was written with, so a column added to a chain later does not read as tampering."""
    values: dict[str, Any] = {}
    for column in columns:
        value = row.get(column)
        if column in spec.json_columns and isinstance(value, str):
            value = json.loads(value)
        values[column] = json_value(value)
    return canonical(values).decode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- entries -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One link of a chain, with its content."""

    chain: str
    seq: int
    record_key: str
    applied_at: str
    """ISO-8601 UTC, as hashed."""
    origin: str | None
    row_json: str
    prev_hash: str
    entry_hash: str

    def header(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "key": self.record_key, "applied_at": self.applied_at,
                "origin": self.origin}

    @property
    def body_hash(self) -> str:
        return body_hash(self.chain, self.seq, self.record_key, self.applied_at, self.origin, self.row_json)

    @property
    def row(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.row_json)
        return parsed

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "row_json": self.row_json, "prev_hash": self.prev_hash, "entry_hash": self.entry_hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        try:
            return cls(str(data["chain"]), int(data["seq"]), str(data["key"]), str(data["applied_at"]),
                       None if data["origin"] is None else str(data["origin"]), str(data["row_json"]),
                       str(data["prev_hash"]), str(data["entry_hash"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ChainFormatError(f"not a chain entry: {error}") from None


def body_hash(chain: str, seq: int, key: str, applied_at: str, origin: str | None, row_json: str) -> str:
    header = canonical({"chain": chain, "seq": seq, "key": key, "applied_at": applied_at, "origin": origin})
    return _sha256(header + b"\n" + row_json.encode())


def link_hash(prev_hash: str, body: str) -> str:
    return _sha256(bytes.fromhex(prev_hash) + bytes.fromhex(body))


def new_entry(chain: str, seq: int, key: str, applied_at: datetime, origin: str | None, row_json: str,
              prev_hash: str) -> Entry:
    """The entry that follows `prev_hash` (the head of `chain`, at `seq - 1`)."""
    at = json_value(applied_at)
    return Entry(chain, seq, key, at, origin, row_json, prev_hash,
                 link_hash(prev_hash, body_hash(chain, seq, key, at, origin, row_json)))


# --- checking a run of entries -------------------------------------------------------------------

@dataclass(frozen=True)
class Break:
    """The first broken link found, in words a person can act on."""

    chain: str
    seq: int
    problem: str
    """`edited` (an entry's content no longer matches its hash), `missing` (a gap: an entry was
    deleted), `reordered` or `relinked` (an entry does not follow the one before it),
    `row_edited`, `row_deleted`, `row_unchained` (a table row that differs from, lacks, or was
    never written through its chain), `checkpoint` (a head that no signed checkpoint agrees with)."""
    detail: str

    def sentence(self) -> str:
        return f"chain {self.chain}, entry {self.seq}: {self.detail}"


@dataclass(frozen=True)
class Link:
    """A redacted entry in an evidence packet: its place and body hash, not its content."""

    seq: int
    body_hash: str


class RunChecker:
    """Walks one chain's entries in order, recomputing every link; `feed` returns the first break.

    A full entry is checked against its own stored hash (an edit is named at once); a redacted
    link can only be checked by where the run ends (the caller compares `head` with a signed
    checkpoint)."""

    def __init__(self, chain: str, *, start_seq: int = 1, start_prev: str = ZERO_HASH) -> None:
        self.chain = chain
        self.next_seq = start_seq
        self.head = start_prev
        self.broken: Break | None = None

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def feed(self, item: Entry | Link) -> Break | None:
        if self.broken is not None:
            return self.broken
        self.broken = self._check(item)
        if self.broken is None:
            self.head = link_hash(self.head, item.body_hash)
            self.next_seq += 1
        return self.broken

    def _check(self, item: Entry | Link) -> Break | None:
        chain, expected = self.chain, self.next_seq
        if item.seq > expected:
            return Break(chain, expected, "missing", f"entries {expected}..{item.seq - 1} are missing (deleted)"
                         if item.seq > expected + 1 else f"entry {expected} is missing (deleted)")
        if item.seq < expected:
            return Break(chain, item.seq, "reordered", f"entry {item.seq} appears again after entry {expected - 1}")
        if isinstance(item, Link):
            return None
        if item.chain != chain:
            return Break(chain, item.seq, "relinked", f"the entry says it belongs to chain {item.chain}")
        if item.prev_hash != self.head:
            return Break(chain, item.seq, "relinked",
                         f"does not follow entry {item.seq - 1} (its previous hash {item.prev_hash[:12]}... is not "
                         f"{self.head[:12]}...): an entry was edited, deleted, inserted or moved before it")
        if link_hash(self.head, item.body_hash) != item.entry_hash:
            return Break(chain, item.seq, "edited",
                         f"its content (key {item.record_key}) no longer matches its hash: the entry was edited")
        return None


def check_run(chain: str, entries: Iterable[Entry | Link], *, start_seq: int,
              start_prev: str) -> tuple[str, int, Break | None]:
    """Walk a run of one chain's entries from `start_seq` (whose predecessor's hash is
    `start_prev`). Returns (head hash, head seq, first break or None)."""
    checker = RunChecker(chain, start_seq=start_seq, start_prev=start_prev)
    for item in entries:
        if checker.feed(item) is not None:
            break
    return checker.head, checker.last_seq, checker.broken


# --- checkpoints -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    seq: int
    entry_hash: str


def checkpoint_statement(heads: Mapping[str, Head], signed_at: datetime, key_id: str) -> str:
    """The canonical text a checkpoint signs: every chain's head at `signed_at`."""
    return canonical({
        "format": CHECKPOINT_FORMAT,
        "signed_at": json_value(signed_at),
        "key_id": key_id,
        "heads": {chain: {"seq": head.seq, "entry_hash": head.entry_hash} for chain, head in sorted(heads.items())},
    }).decode()


def statement_heads(statement: str) -> tuple[str, dict[str, Head]]:
    """(signed_at, heads) of a checkpoint statement; `ChainFormatError` if it is not one."""
    try:
        data = json.loads(statement)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ChainFormatError(f"not a {CHECKPOINT_FORMAT} statement")
        heads = {str(chain): Head(int(head["seq"]), str(head["entry_hash"])) for chain, head in data["heads"].items()}
        return str(data["signed_at"]), heads
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ChainFormatError(f"not a checkpoint statement: {error}") from None


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: int
    signed_at: str
    statement: str
    key_id: str
    public_key: str
    """base64 of the raw Ed25519 public key."""
    signature: str
    heads: Mapping[str, Head]
    """Read from the signed statement."""

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint_id": self.checkpoint_id, "signed_at": self.signed_at, "statement": self.statement,
                "key_id": self.key_id, "public_key": self.public_key, "signature": self.signature}


    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        try:
            signed_at, heads = statement_heads(str(data["statement"]))
            return cls(int(data["checkpoint_id"]), signed_at, str(data["statement"]), str(data["key_id"]),
                       str(data["public_key"]), str(data["signature"]), heads)
        except (KeyError, TypeError, ValueError) as error:
            raise ChainFormatError(f"not a checkpoint: {error}") from None


def latest_rows(entries: Sequence[Entry]) -> dict[tuple[str, str], Entry]:
    """The last entry of each (chain, key): the row as it stands now."""
    latest: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        current = latest.get((entry.chain, entry.record_key))
        if current is None or entry.seq > current.seq:
            latest[(entry.chain, entry.record_key)] = entry
    return latest


def runs(seqs: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Consecutive runs (first, last) of sorted, distinct sequence numbers."""
    first = last = None
    for seq in sorted(set(seqs)):
        if last is not None and seq == last + 1:
            last = seq
            continue
        if first is not None and last is not None:
            yield first, last
        first = last = seq
    if first is not None and last is not None:
        yield first, last
