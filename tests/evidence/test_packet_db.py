"""A packet made from rows written through the outbox (no Asterisk): it holds what the rows
show, checks out offline with only the public key, and names what was changed: a byte of a
file, a row edited in PostgreSQL, a file added. The HTTP route and the CLI around it."""

from __future__ import annotations

import functools
import io
import shutil
import wave
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from compliance_rules.store import DncStore
from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.outbox import Outbox
from crm_bridge.store import CrmStore, TokenRole
from dialer.api.http import ApiDependencies
from dialer.app import build_app
from evidence.recordings import LifecycleLegalHolds, recording_audio
from evidence.service import EvidenceService, LegalHoldRequest, Requester
from evidence.subject import subject_from
from evidence.verify import verify_packet
from recordings.crypto import Keyring, seal
from recordings.reader import RecordingReader
from tests.crm import factories

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
T0 = factories.T0
PHONE = "+12125550142"


def _wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x01\x00" * int(8000 * seconds))
    return out.getvalue()


def _recording(archive: Path, keyring: Keyring, call_id: str) -> dict[str, Any]:
    import hashlib

    audio = _wav(2.0)
    recording_id = f"rec-{call_id}"
    path = archive / f"{recording_id}.wav.sealed"
    path.write_bytes(seal(audio, keyring.current, recording_id))
    return factories.recording(call_id, recording_id=recording_id, lead_id="lead-e", storage_uri=path.as_uri(),
                               format="wav", sha256=hashlib.sha256(audio).hexdigest(), size_bytes=len(audio),
                               duration_seconds=2.0)


async def _seed(tmp_path: Path, dsn: str, keyring: Keyring, archive: Path) -> None:
    allowed = factories.decision(lead_id="lead-e", phone=PHONE, allowed=True, reasons=[],
                                 data_versions={"rules": "2026-11-23 sha256:abc", "federal_dnc": "2026-11-20"})
    second = {**allowed, "decision_id": "11111111-2222-4333-8444-555555555555",
              "decided_at": (T0 + timedelta(hours=1)).isoformat()}
    blocked = factories.decision(lead_id="lead-e", phone=PHONE, decided_at=(T0 + timedelta(hours=2)).isoformat(),
                                 reasons=[{"code": "opted_out", "message": "on the company's list",
                                           "citation": "47 CFR 64.1200(d)(3)"}])
    abandoned = factories.call("call-e1", 5, lead_id="lead-e", lead_number=PHONE, agent_id=None,
                               compliance_decision_id=allowed["decision_id"], lead_answered_at=T0 + timedelta(seconds=5),
                               greeting_ended_at=T0 + timedelta(seconds=6), amd_result="HUMAN",
                               ended_at=T0 + timedelta(seconds=20), outcome="abandoned", safe_harbor_played=True,
                               abandoned=True)
    connected = factories.call("call-e2", 5, lead_id="lead-e", lead_number=PHONE,
                               requested_at=T0 + timedelta(hours=1), compliance_decision_id=second["decision_id"],
                               lead_answered_at=T0 + timedelta(hours=1, seconds=5),
                               greeting_ended_at=T0 + timedelta(hours=1, seconds=6),
                               bridged_at=T0 + timedelta(hours=1, seconds=6.8), amd_result="HUMAN",
                               ended_at=T0 + timedelta(hours=1, seconds=60), outcome="answered")
    items: list[tuple[str, dict[str, Any]]] = [
        ("campaign_upsert", factories.campaign(seller_name="Acme Insurance", dnc_callback_number="+18885550199")),
        ("agent_upsert", factories.agent()),
        ("lead_upsert", factories.lead("lead-e", phones=[PHONE], state="NY", zip="10001",
                                       consents=[{"consent_id": "lead-e-pewc", "kind": "pewc", "phone": PHONE,
                                                  "obtained_at": T0 - timedelta(days=2), "source": "web_form",
                                                  "evidence_ref": "https://forms.example/consent/123"}])),
        ("compliance_decision", allowed), ("call", abandoned), ("recording", _recording(archive, keyring, "call-e1")),
        ("compliance_decision", second), ("call", connected), ("recording", _recording(archive, keyring, "call-e2")),
        ("disposition", factories.disposition("do_not_call", lead_id="lead-e", call_id="call-e2",
                                              disposed_at=T0 + timedelta(hours=1, minutes=2))),
        ("opt_out", factories.opt_out(PHONE, lead_id="lead-e", call_id="call-e2", source="disposition",
                                      created_at=T0 + timedelta(hours=1, minutes=2))),
        ("compliance_decision", blocked),
    ]
    async with Outbox(tmp_path / "state", dsn) as outbox:
        await outbox.put_many(items)
        assert await outbox.flush(20)


@pytest.fixture
async def setup(tmp_path: Path, migrated_scratch_dsn: str) -> tuple[EvidenceService, AuditSigningKey, str]:
    archive = tmp_path / "archive"
    archive.mkdir()
    keyring = Keyring.load_or_create(tmp_path / "recording-keys")
    await _seed(tmp_path, migrated_scratch_dsn, keyring, archive)
    key = AuditSigningKey.load_or_create(tmp_path / "audit-keys", chain_signed=False)
    reader = RecordingReader(archive, keyring)
    service = EvidenceService(migrated_scratch_dsn, key, functools.partial(recording_audio, reader), LifecycleLegalHolds())
    return service, key, migrated_scratch_dsn


def _rewrite(packet: Path, out: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(packet) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, change.get(name, source.read(name)))
        for name in set(change) - set(source.namelist()):
            target.writestr(name, change[name])


async def test_a_packet_holds_the_leads_contacts_and_checks_out_offline(
    tmp_path: Path, setup: tuple[EvidenceService, AuditSigningKey, str]
) -> None:
    service, key, _ = setup
    out = tmp_path / "lead-e.zip"
    built = await service.build(subject_from(lead_id="lead-e"), out, Requester("cli:test", "admin", "cli"))
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        import json

        evidence = json.loads(archive.read("data/evidence.json"))
    assert {"report.html", "report.pdf", "manifest.json", "manifest.json.sig", "recordings/rec-call-e1.wav",
            "recordings/rec-call-e2.wav", "transcripts/rec-call-e1.txt", "chain/segments.json"} <= names
    found = evidence["findings"]
    assert [c["call_id"] for c in found["contacts"]] == ["call-e1", "call-e2"]
    first, second = found["contacts"]
    assert first["two_second_rule"]["verdict"] == "safe_harbor" and first["safe_harbor"]["played"]
    assert "Acme Insurance" in first["safe_harbor"]["message"]
    assert second["two_second_rule"]["verdict"] == "connected_in_time" and second["two_second_rule"]["delay_seconds"] == 0.8
    assert second["decision"]["data_versions"]["federal_dnc"] == "2026-11-20"
    assert second["local"] == ["2026-11-23 11:00:00 EST (America/New_York)"]
    assert found["summary"]["no_contact_after_opt_out"] and found["opt_outs"][0]["after"]["gate_blocked"] == 1
    assert found["consents"][0]["evidence_ref"] == "https://forms.example/consent/123"
    assert all(r["audio_verified"] for c in found["contacts"] for r in c["recordings"])
    # Audited: the packet, and each recording handed out in it.
    kinds = [kind for kind, _ in built.audit_records]
    assert kinds == ["evidence_packet", "recording_access", "recording_access"]

    check = verify_packet(out, [key.public_key])
    assert check.ok, check.problems
    assert check.recordings_matched == 2 and check.rows_backed >= 9 and check.checkpoints == 1

    # One byte of the report changed.
    with zipfile.ZipFile(out) as archive:
        html = archive.read("report.html")
    edited = tmp_path / "edited.zip"
    _rewrite(out, edited, {"report.html": html.replace(b"ALLOWED", b"ALLOWEd", 1)})
    problems = verify_packet(edited, [key.public_key]).problems
    assert problems == ["report.html was changed after signing: its SHA-256 does not match the manifest"]
    # A file slipped in.
    _rewrite(out, edited, {"recordings/extra.wav": b"RIFF"})
    assert verify_packet(edited, [key.public_key]).problems == [
        "recordings/extra.wav is not in the signed manifest: it was added after signing"]
    # Another key than the agency's.
    assert "not the key you gave" in verify_packet(out, [AuditSigningKey.generate().public_key]).problems[0]

    # One call: that call, its decision and recording, and the number's opt-out history.
    one = tmp_path / "call.zip"
    built = await service.build(subject_from(call_id="call-e2"), one, Requester("cli:test", "admin", "cli"))
    assert [row["call_id"] for row in built.data.calls] == ["call-e2"] and len(built.data.recordings) == 1
    assert len(built.data.decisions) == 1 and len(built.data.opt_outs) == 1
    assert verify_packet(one, [key.public_key]).ok
    # A period: only the contacts inside it.
    period = subject_from(lead_id="lead-e", start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=3))
    built = await service.build(period, tmp_path / "period.zip", Requester("cli:test", "admin", "cli"))
    assert [row["call_id"] for row in built.data.calls] == ["call-e2"]


async def test_a_decision_edited_in_postgres_shows_in_the_next_packet(
    tmp_path: Path, setup: tuple[EvidenceService, AuditSigningKey, str]
) -> None:
    service, key, dsn = setup
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE compliance_decisions SET data_versions = '{\"federal_dnc\": \"2026-11-23\"}' "
                           "WHERE decision_id = '11111111-2222-4333-8444-555555555555'")
    finally:
        await conn.close()
    out = tmp_path / "after-edit.zip"
    await service.build(subject_from(lead_id="lead-e"), out, Requester("cli:test", "admin", "cli"))
    problems = verify_packet(out, [key.public_key]).problems
    assert problems == ["the compliance_decisions row 11111111-2222-4333-8444-555555555555 differs from its "
                        "audit-trail entry 2 (changed: data_versions)"]


async def test_a_packet_can_place_a_legal_hold_on_every_recording_it_covers(
    tmp_path: Path, setup: tuple[EvidenceService, AuditSigningKey, str]
) -> None:
    service, key, dsn = setup
    hold = LegalHoldRequest("cli:counsel", "Doe v. Acme, demand letter of 2026-11-20")
    built = await service.build(subject_from(lead_id="lead-e"), tmp_path / "held.zip", Requester("x", "admin", "cli"),
                                hold)
    conn = await asyncpg.connect(dsn)
    try:
        held = await conn.fetch("SELECT recording_id, legal_hold_by, legal_hold_reason FROM recordings "
                                "WHERE legal_hold ORDER BY recording_id")
        events = await conn.fetch("SELECT action FROM recording_events ORDER BY recording_id")
    finally:
        await conn.close()
    assert [(r["recording_id"], r["legal_hold_by"]) for r in held] == [("rec-call-e1", "cli:counsel"),
                                                                     ("rec-call-e2", "cli:counsel")]
    assert [row["action"] for row in events] == ["legal_hold_set", "legal_hold_set"]
    assert dict(built.audit_records)["evidence_packet"]["legal_hold"] is True
    recordings = [r for c in built.data.calls for r in built.data.recordings if r["call_id"] == c["call_id"]]
    assert all(r["legal_hold"] for r in recordings)
    # A hold is not tampering: the hold columns are not evidence columns of the chain.
    assert verify_packet(tmp_path / "held.zip", [key.public_key]).ok
    # Asked again: each recording says it is already held.
    again = await service.build(subject_from(lead_id="lead-e"), tmp_path / "again.zip",
                                Requester("x", "admin", "cli"), hold)
    assert again.written.path.exists()


async def test_the_http_route_serves_supervisors_and_admins_and_audits_each_packet(
    tmp_path: Path, setup: tuple[EvidenceService, AuditSigningKey, str], redis_client: Any, redis_prefix: str
) -> None:
    service, key, dsn = setup
    store = await CrmStore.open(dsn)
    try:
        async with Outbox(tmp_path / "api-state", dsn) as outbox:
            app = build_app(ApiDependencies(store=store, records=outbox, dnc=DncStore(redis_client, redis_prefix)),
                            evidence=service)
            supervisor = (await store.issue_token(TokenRole.SUPERVISOR)).secret
            crm = (await store.issue_token(TokenRole.CRM)).secret
            async with TestClient(TestServer(app)) as client:
                def auth(token: str) -> dict[str, str]:
                    return {"Authorization": f"Bearer {token}"}

                response = await client.get("/v1/evidence", params={"phone": "(212) 555-0142"}, headers=auth(supervisor))
                assert response.status == 200 and response.content_type == "application/zip"
                (tmp_path / "api.zip").write_bytes(await response.read())
                packet_id = response.headers["X-Evidence-Packet-Id"]
                assert verify_packet(tmp_path / "api.zip", [key.public_key]).ok
                assert (await client.get("/v1/evidence", params={"lead_id": "x"}, headers=auth(crm))).status == 403
                bad = await client.get("/v1/evidence", params={"lead_id": "x", "call_id": "y"}, headers=auth(supervisor))
                assert bad.status == 422 and (await bad.json())["field"] == "call_id"
                missing = await client.get("/v1/evidence", params={"lead_id": "nobody"}, headers=auth(supervisor))
                assert missing.status == 404 and (await missing.json())["error"] == "subject_not_found"
            assert await outbox.flush(10)
        rows = await _fetch(dsn, "SELECT requested_by, channel, files FROM evidence_packets WHERE packet_id = $1",
                            packet_id)
        assert rows[0]["channel"] == "http" and rows[0]["files"] > 5
        accesses = await _fetch(dsn, "SELECT channel FROM recording_accesses")
        assert [row["channel"] for row in accesses] == ["evidence:http", "evidence:http"]
    finally:
        await store.close()


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def test_cli_verify_prints_what_it_proves_and_what_it_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dialer.cli import main

    assert main(["evidence", "verify", str(tmp_path / "none.zip")]) == 2
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert main(["evidence", "verify", str(tmp_path / "junk.zip")]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    shutil.rmtree(tmp_path)
