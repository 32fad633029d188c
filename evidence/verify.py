"""`dialer evidence verify`: checks a packet offline, with only a public key. Pure (reads the
ZIP file it is given, nothing else).

1. The manifest's Ed25519 signature, by the key given (or, failing that, the key the packet
   names, which then proves only that the packet is whole, not who made it).
2. Every file against the manifest: present, same size, same SHA-256; no file added.
3. Every signed checkpoint the packet carries, and every chain segment recomputed from its
   first entry to the checkpoint's head.
4. Every row in `data/evidence.json` that belongs to an audited table against its last chain
   entry, and every recording's audio against the checksum sealed in its chained row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_bridge.audit_chain import (
    CHAINS,
    ChainFormatError,
    Checkpoint,
    Entry,
    Link,
    RunChecker,
    canonical,
)
from crm_bridge.audit_keys import key_id_of, signature_valid
from evidence.packet import MANIFEST, PACKET_FORMAT, SIGNATURE


@dataclass
class PacketCheck:
    """What a check found; `ok` only without problems."""

    path: Path
    key_id: str = ""
    key_trusted: bool = False
    files: int = 0
    entries: int = 0
    links: int = 0
    checkpoints: int = 0
    rows_backed: int = 0
    rows_context: int = 0
    recordings_matched: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def proves(self) -> list[str]:
        who = (f"the holder of audit key {self.key_id}" if self.key_trusted else
               f"whoever holds key {self.key_id} (not compared with a key you trust: pass --public-key)")
        return [
            f"the packet is exactly as {who} signed it: {self.files} files, none changed, none added",
            f"{self.entries} audit-trail entries (and {self.links} links between them) lead unbroken to "
            f"{self.checkpoints} checkpoint(s) signed by that key",
            f"{self.rows_backed} rows in the packet equal the rows as they were written (their last chain entry)",
            f"{self.recordings_matched} recording(s) are the audio whose SHA-256 was sealed when the call ended",
        ]

    @staticmethod
    def does_not_prove() -> list[str]:
        return [
            "that the packet holds everything about this person: it holds what the dialer's queries found "
            "(`dialer audit verify` on the live database checks that no audited row was deleted or added "
            "outside the trail)",
            "anything about the signer beyond the key: a holder of the private key could sign a rewritten history",
            "the lead, campaign and agent details shown for context, which are not chained rows",
            "what was said in a call beyond the audio itself (no transcripts yet)",
        ]


def _load_json(archive: zipfile.ZipFile, name: str, check: PacketCheck) -> Any:
    try:
        return json.loads(archive.read(name))
    except KeyError:
        check.problems.append(f"{name} is missing")
    except (json.JSONDecodeError, UnicodeDecodeError):
        check.problems.append(f"{name} is not valid JSON")
    return None


def _check_files(archive: zipfile.ZipFile, manifest: Mapping[str, Any], check: PacketCheck) -> None:
    listed = {str(item.get("path")): item for item in manifest.get("files", []) if isinstance(item, dict)}
    present = set(archive.namelist()) - {MANIFEST, SIGNATURE}
    for path in sorted(present - set(listed)):
        check.problems.append(f"{path} is not in the signed manifest: it was added after signing")
    for path, item in sorted(listed.items()):
        if path not in present:
            check.problems.append(f"{path} is listed in the manifest but missing from the packet")
            continue
        data = archive.read(path)
        if hashlib.sha256(data).hexdigest() != item.get("sha256") or len(data) != item.get("bytes"):
            check.problems.append(f"{path} was changed after signing: its SHA-256 does not match the manifest")
    check.files = len(listed)


def _check_chain(archive: zipfile.ZipFile, trusted: Collection[bytes], check: PacketCheck) -> dict[tuple[str, str], Entry]:
    """Checkpoints and segments; returns the last entry of each (chain, key) that checked out."""
    checkpoints: dict[int, Checkpoint] = {}
    for raw in _load_json(archive, "chain/checkpoints.json", check) or []:
        try:
            checkpoint = Checkpoint.from_json(raw)
        except ChainFormatError as error:
            check.problems.append(f"chain/checkpoints.json: {error}")
            continue
        public_key = base64.b64decode(checkpoint.public_key)
        if public_key not in trusted:
            check.problems.append(f"checkpoint {checkpoint.checkpoint_id} is signed by key "
                                  f"{key_id_of(public_key)}, not the packet's key")
        elif not signature_valid(public_key, checkpoint.statement.encode(), checkpoint.signature):
            check.problems.append(f"checkpoint {checkpoint.checkpoint_id} has a bad signature: it was altered")
        else:
            checkpoints[checkpoint.checkpoint_id] = checkpoint
    check.checkpoints = len(checkpoints)
    latest: dict[tuple[str, str], Entry] = {}
    for raw in _load_json(archive, "chain/segments.json", check) or []:
        try:
            chain, checkpoint_id = str(raw["chain"]), int(raw["checkpoint_id"])
            items: list[Entry | Link] = [Entry.from_json(item) if "row_json" in item
                                         else Link(int(item["seq"]), str(item["body_hash"])) for item in raw["items"]]
            checker = RunChecker(chain, start_seq=int(raw["start_seq"]), start_prev=str(raw["start_prev"]))
        except (KeyError, TypeError, ValueError) as error:
            check.problems.append(f"chain/segments.json: a segment cannot be read ({error})")
            continue
        for item in items:
            if checker.feed(item) is not None:
                break
        if checker.broken is not None:
            check.problems.append(f"audit trail: {checker.broken.sentence()}")
            continue
        signed = checkpoints.get(checkpoint_id)
        head = None if signed is None else signed.heads.get(chain)
        if head is None:
            check.problems.append(f"audit trail: chain {chain} entries {raw['start_seq']}..{checker.last_seq} lead to "
                                  f"checkpoint {checkpoint_id}, which is not a valid signed checkpoint of this packet")
            continue
        if (head.seq, head.entry_hash) != (checker.last_seq, checker.head):
            check.problems.append(
                f"audit trail: chain {chain} entries {raw['start_seq']}..{checker.last_seq} do not reach the head "
                f"signed by checkpoint {checkpoint_id} (entry {head.seq}): an entry was edited, removed or forged")
            continue
        for item in items:
            if isinstance(item, Entry):
                check.entries += 1
                current = latest.get((item.chain, item.record_key))
                if current is None or item.seq > current.seq:
                    latest[(item.chain, item.record_key)] = item
            else:
                check.links += 1
    return latest


def _check_rows(archive: zipfile.ZipFile, latest: Mapping[tuple[str, str], Entry], check: PacketCheck) -> None:
    evidence = _load_json(archive, "data/evidence.json", check)
    if not isinstance(evidence, dict):
        return
    if evidence.get("format") != PACKET_FORMAT:
        check.problems.append(f"data/evidence.json is not a {PACKET_FORMAT} packet")
        return
    rows: Mapping[str, Any] = evidence.get("rows") or {}
    by_table = {spec.table: spec for spec in CHAINS.values()}
    sealed: dict[str, str] = {}
    for table, table_rows in rows.items():
        spec = by_table.get(table)
        if spec is None:
            check.rows_context += len(table_rows or [])
            continue
        for row in table_rows or []:
            key = str(row.get(spec.key))
            entry = latest.get((spec.name, key))
            if entry is None:
                check.problems.append(f"the {table} row {key} has no verified audit-trail entry in the packet")
                continue
            written = entry.row
            shown = {column: row.get(column) for column in written}
            if canonical(shown) != canonical(written):
                changed = sorted(column for column in written if row.get(column) != written[column])
                check.problems.append(f"the {table} row {key} differs from its audit-trail entry {entry.seq} "
                                      f"(changed: {', '.join(changed)})")
                continue
            check.rows_backed += 1
            if table == "recordings":
                sealed[key] = str(written.get("sha256", "")).strip()
    names = set(archive.namelist())
    for recording_id, digest in sorted(sealed.items()):
        files = [name for name in names if name.startswith(f"recordings/{recording_id}.")]
        if not files:
            continue
        if hashlib.sha256(archive.read(files[0])).hexdigest() == digest:
            check.recordings_matched += 1
        else:
            check.problems.append(f"{files[0]} is not the audio sealed for recording {recording_id}")


def verify_packet(path: Path, trusted_keys: Collection[bytes] = ()) -> PacketCheck:
    """Check the packet at `path`; with no `trusted_keys`, against the key the packet carries."""
    check = PacketCheck(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        check.problems.append(f"{path} is not a readable ZIP file ({error})")
        return check
    with archive:
        try:
            manifest_bytes = archive.read(MANIFEST)
            signature = archive.read(SIGNATURE).decode().strip()
            manifest = json.loads(manifest_bytes)
            packet_key = base64.b64decode(manifest["public_key"], validate=True)
        except (KeyError, ValueError, UnicodeDecodeError) as error:
            check.problems.append(f"the packet has no readable signed manifest ({error})")
            return check
        check.key_id = key_id_of(packet_key)
        check.key_trusted = bool(trusted_keys)
        if trusted_keys and packet_key not in trusted_keys:
            check.problems.append(f"the packet is signed by key {check.key_id}, which is not the key you gave")
            return check
        if not signature_valid(packet_key, manifest_bytes, signature):
            check.problems.append("the manifest's signature is not valid: manifest.json was changed after signing")
            return check
        _check_files(archive, manifest, check)
        latest = _check_chain(archive, {packet_key}, check)
        _check_rows(archive, latest, check)
    return check
