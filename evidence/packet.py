"""Writing a packet: one ZIP file whose manifest lists the SHA-256 of every other file and is
signed with the audit key, so the whole packet is signed.

    README.txt               what this is and how to check it
    report.html, report.pdf  the report, for people
    data/evidence.json       the same findings and every row behind them, for machines
    chain/segments.json      the chain entries of those rows and the links to signed checkpoints
    chain/checkpoints.json   the signed checkpoints
    recordings/ID.EXT        the calls' audio, opened from the sealed archive
    transcripts/ID.txt       placeholders (no transcription yet)
    public-key.pem           the signer's public key (compare its fingerprint with the published one)
    manifest.json            {"files": [{"path", "sha256", "bytes"}], ...}
    manifest.json.sig        base64 Ed25519 signature of manifest.json's exact bytes
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_bridge.audit_chain import json_value
from crm_bridge.audit_keys import AuditSigningKey
from evidence.findings import findings as work_out_findings
from evidence.findings import utc_text
from evidence.model import EvidenceData
from evidence.report import render_html, render_pdf

PACKET_FORMAT = "dialer-evidence/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"


@dataclass(frozen=True)
class AudioFile:
    """A recording's audio as the packet stores it."""

    data: bytes
    extension: str
    media_type: str


OpenAudio = Callable[[Mapping[str, Any]], AudioFile]


@dataclass(frozen=True)
class PacketMeta:
    packet_id: str
    created_at: str
    """ISO-8601 UTC."""
    requested_by: str
    role: str
    channel: str
    legal_hold: Mapping[str, str] = field(default_factory=dict)
    """recording id -> what the hold step did, when a hold was asked for."""


@dataclass(frozen=True)
class WrittenPacket:
    path: Path
    manifest_sha256: str
    files: int
    recording_ids: tuple[str, ...]
    audio_bytes: Mapping[str, int]
    """recording id -> bytes of audio handed out in the packet."""


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


class _Writer:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.files: list[dict[str, Any]] = []

    def add(self, path: str, data: bytes, *, compress: bool = True) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.archive.writestr(path, data, compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
        self.files.append({"path": path, "sha256": digest, "bytes": len(data)})
        return digest


def _readme(data: EvidenceData, meta: PacketMeta, key: AuditSigningKey) -> bytes:
    return f"""Evidence packet {meta.packet_id}
About: {data.subject.describe()}
Made: {utc_text(meta.created_at)} by {meta.requested_by} ({meta.role}, {meta.channel})
Signed with audit key {key.key_id}

Open report.pdf (or report.html) to read it. data/evidence.json holds the same findings and every
row behind them. recordings/ holds each call's audio.

To check it, with the agency's public audit key (public-key.pem here is the signer's; compare its
fingerprint, {key.key_id}, with the one the agency published):

    dialer evidence verify THIS_FILE.zip --public-key agency-audit-key.pem

It checks the manifest's signature, the SHA-256 of every file, and every audit-trail entry up to
its signed checkpoint, offline, and prints what that proves and what it does not.
""".encode()


def write_packet(data: EvidenceData, meta: PacketMeta, key: AuditSigningKey, out: Path,
                 open_audio: OpenAudio | None) -> WrittenPacket:
    """Write the packet to `out` (through a temporary file, renamed when complete). CPU and disk
    only: run it in a thread from async code."""
    partial = out.with_name(out.name + ".partial")
    audio_bytes: dict[str, int] = {}
    files_of: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(partial, "w") as archive:
        writer = _Writer(archive)
        writer.add("README.txt", _readme(data, meta, key))
        for recording in data.recordings:
            recording_id = str(recording["recording_id"])
            entry: dict[str, Any] = {"transcript_file": f"transcripts/{recording_id}.txt"}
            if open_audio is None:
                entry.update(audio_verified=False, audio_error="the recordings archive is not available here")
            else:
                try:
                    audio = open_audio(recording)
                except Exception as error:  # any archive failure: the packet says so instead of failing
                    entry.update(audio_verified=False, audio_error=str(error))
                else:
                    name = f"recordings/{recording_id}.{audio.extension}"
                    digest = writer.add(name, audio.data, compress=False)
                    audio_bytes[recording_id] = len(audio.data)
                    entry.update(file=name, audio_sha256=digest, media_type=audio.media_type,
                                 audio_verified=digest == str(recording["sha256"]).strip())
            writer.add(entry["transcript_file"],
                       f"Transcript of recording {recording_id}: not produced (this dialer does not transcribe "
                       "calls yet). Listen to the recording itself.\n".encode())
            files_of[recording_id] = entry
        found = work_out_findings(data, files_of)
        holds = dict(meta.legal_hold)
        packet_view = {
            "packet_id": meta.packet_id, "created_at": meta.created_at, "created_at_utc": utc_text(meta.created_at),
            "requested_by": meta.requested_by, "role": meta.role, "channel": meta.channel, "key_id": key.key_id,
            "file_name": out.name,
            "legal_hold_text": (f"placed on {sum(1 for v in holds.values() if v == 'held')} recording(s) when this "
                                "packet was made" + "".join(f"; {k}: {v}" for k, v in sorted(holds.items())
                                                             if v != "held")) if holds else "not asked for",
        }
        rows = {"leads": data.leads, "calls": data.calls, "compliance_decisions": data.decisions,
                "dispositions": data.dispositions, "opt_outs": data.opt_outs, "consent_records": data.consents,
                "recordings": data.recordings, "recording_accesses": data.recording_accesses,
                "monitor_sessions": data.monitor_sessions, "messages": data.messages,
                "recording_events": data.recording_events,
                "campaigns": list(data.campaigns.values()), "agents": list(data.agents.values())}
        writer.add("data/evidence.json", _json({"format": PACKET_FORMAT, "packet": packet_view, "findings": found,
                                                "rows": json_value(rows)}))
        writer.add("chain/segments.json", _json([segment.to_json() for segment in data.segments]))
        writer.add("chain/checkpoints.json", _json([checkpoint.to_json() for checkpoint in data.checkpoints]))
        html = render_html(found, packet_view)
        writer.add("report.html", html.encode())
        writer.add("report.pdf", render_pdf(html))
        writer.add("public-key.pem", key.public_pem())
        manifest = _json({
            "format": PACKET_FORMAT, "packet_id": meta.packet_id, "created_at": meta.created_at,
            "requested_by": meta.requested_by, "role": meta.role, "channel": meta.channel,
            "subject": data.subject.to_json(), "key_id": key.key_id, "public_key": key.public_key_b64,
            "checkpoint_id": None if data.checkpoint is None else data.checkpoint.checkpoint_id,
            "files": writer.files,
        })
        archive.writestr(MANIFEST, manifest, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(SIGNATURE, key.sign(manifest) + "\n")
        count = len(writer.files) + 2
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(out)
    return WrittenPacket(out, hashlib.sha256(manifest).hexdigest(), count, tuple(files_of), audio_bytes)
