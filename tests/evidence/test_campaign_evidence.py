"""The audit-defense packet over a real campaign run on the real stack (Asterisk, PostgreSQL,
Redis): a lead with written consent is called once when no agent is free (the safe-harbor
message plays: abandoned), once when one is (connected and recorded), is texted (through
Asterisk, delivered), opts out through the agent's do-not-call disposition, and is then blocked
by the gate. The packet made by
`dialer evidence` lists exactly those events with their evidence, its audio plays, `dialer
evidence verify` passes; a byte of the report changed, a decision row edited in PostgreSQL and
a chain entry deleted are each caught and named. The report is looked at in Chromium and a
screenshot kept in docs/."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page

from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.audit_log import sign_checkpoint
from dialer.campaign.agent import AgentState
from dialer.campaign.dialing import campaign_lead_record
from dialer.cli import main
from dialer.pacing import PacingEvent, PacingSnapshot
from recordings.transcode import ffmpeg_binary
from tests.audio import SOUNDS, notice_match
from tests.campaign.conftest import Floor
from tests.conftest import AUDIT_KEYS_DIR

pytestmark = pytest.mark.integration
DOCS = Path(__file__).resolve().parents[2] / "docs"


class _AllAtOnce:
    """Every queued lead at once, whatever the agents (to force the safe-harbor message)."""

    name = "all_at_once"

    def observe(self, event: PacingEvent) -> None:
        del event

    def decide(self, snapshot: PacingSnapshot, now: float) -> int:
        del now
        return snapshot.free_lines


@contextlib.contextmanager
def _environment(floor: Floor, state: Path) -> Iterator[None]:
    """The `dialer` command pointed at the floor's database, archive and keys."""
    import os

    settings = floor.services.settings
    values = {"DIALER_PG_DSN": floor.pg_dsn, "DIALER_STATE_DIR": str(state),
              "DIALER_RECORDINGS_DIR": str(settings.recordings_dir),
              "DIALER_RECORDING_KEYS_DIR": str(settings.recording_keys_dir),
              "DIALER_AUDIT_KEYS_DIR": str(AUDIT_KEYS_DIR), "DIALER_LOG_FORMAT": "json", "DIALER_LOG_LEVEL": "error"}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _dialer(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the `dialer` command (in a thread: it runs its own event loop)."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _playable(data: bytes, workdir: Path) -> bytes:
    """The packet's audio decoded by ffmpeg into 8 kHz mono WAV (it plays, or this fails)."""
    source, target = workdir / "in.audio", workdir / "out.wav"
    source.write_bytes(data)
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-y", "-i", str(source), "-ac", "1", "-ar", "8000",
                    str(target)], check=True, timeout=60)
    return target.read_bytes()


def _wav_seconds(wav: bytes) -> float:
    import wave

    with wave.open(io.BytesIO(wav)) as audio:
        return audio.getnframes() / audio.getframerate()


async def _run_until_over(floor: Floor, campaign_id: str, dials: int, pacer: Any = None) -> None:
    runtime = floor.campaigns
    await runtime.start_campaign(campaign_id, pacer=pacer)
    runner = runtime.campaigns[campaign_id]
    await floor.wait_for(lambda: runner.counters["dials"] >= dials and not runner.calls, 60, "the call over")
    await runtime.stop_campaign(campaign_id)


async def _wait_rows(floor: Floor, query: str, *args: Any, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await floor.fetch(query, *args):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not within {within} s: {query}")
        await floor.services.outbox.flush(2)
        await asyncio.sleep(0.2)


async def _due_again(floor: Floor, campaign_id: str, lead_id: str) -> None:
    await floor.seed_many([("campaign_lead", campaign_lead_record(
        campaign_id, lead_id, next_attempt_at=None, callback_at=None, done=False))])


@pytest.mark.timeout(240)
async def test_the_packet_of_a_called_then_opted_out_lead_holds_exactly_its_story_and_catches_tampering(
    floor: Floor, tmp_path: Path, capsys: pytest.CaptureFixture[str], page: Page
) -> None:
    runtime = floor.campaigns
    conn = await asyncpg.connect(floor.pg_dsn)
    try:
        await sign_checkpoint(conn, AuditSigningKey.load(AUDIT_KEYS_DIR))  # `audit verify --since` starts here
    finally:
        await conn.close()
    since = datetime.now(UTC).isoformat()
    campaign_id = await floor.campaign(dial_mode="progressive")
    # A person on a number of its own (+1 646 NXX, rings 1 s, talks 8 s): no other test's calls.
    phone = f"+1646{random.randint(200, 899)}1108"
    consent = {"consent_id": f"pewc-{floor.suffix}", "kind": "pewc", "phone": phone,
               "obtained_at": "2026-11-01T15:04:05Z", "source": "web_form",
               "evidence_ref": "https://forms.acme.example/submissions/8841 (IP 203.0.113.7, TrustedForm cert 51f2)"}
    lead_id = (await floor.leads(campaign_id, [phone], state="NY", zip="10001", consents=[consent]))[phone]
    agent_id = await floor.agent("Local/sim31@agent-sim")
    await runtime.login(agent_id, [campaign_id])
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready")

    # 1. Nobody free: the person hears the safe-harbor message.
    await runtime.pause(agent_id, "training")
    await _run_until_over(floor, campaign_id, 1, _AllAtOnce())
    # 2. The agent is ready: connected within 2 s, recorded.
    await runtime.ready(agent_id)
    await floor.wait_for(lambda: (s := runtime.agent_state(agent_id)) is not None and s.state is AgentState.READY,
                         20, "agent ready again")
    await _due_again(floor, campaign_id, lead_id)
    await _run_until_over(floor, campaign_id, 1)
    calls = await floor.fetch("SELECT * FROM calls WHERE lead_id = $1 ORDER BY requested_at", lead_id)
    assert [(c["safe_harbor_played"], c["bridged_at"] is not None) for c in calls] == [(True, False), (False, True)]
    # 2b. A text (texting is installed): sent through Asterisk to the simulated phone, delivered.
    response = await floor.client.post("/v1/messages", headers=floor.auth(), json={
        "lead_id": lead_id, "campaign_id": campaign_id, "body": "Hi {first_name}, your quote is ready."})
    assert response.status == 202, await response.text()
    message_id = (await response.json())["message_id"]
    await _wait_rows(floor, "SELECT 1 FROM messages WHERE message_id = $1 AND delivery_status = 'delivered'",
                     message_id, within=20)
    # 3. The person asks not to be called again: the agent's do-not-call disposition.
    response = await floor.client.post(f"/v1/calls/{calls[1]['call_id']}/disposition", headers=floor.auth(),
                                       json={"code": "do_not_call", "notes": "asked to be put on the do-not-call list"})
    assert response.status == 202
    # 4. The CRM asks to call the lead again (click-to-call): the gate refuses, nothing is dialed.
    # (The campaign itself no longer offers the lead: a do-not-call disposition ends its run.)
    # The floor's gate runs on a fixed clock (inside the calling window); for this one decision it
    # runs on the real clock the opt-out was dated by, so "after the opt-out" means what it says.
    gate_clock = floor.services.gate.clock
    floor.services.gate.clock = lambda: datetime.now(UTC)
    try:
        response = await floor.client.post("/v1/calls", headers={**floor.auth(), "Idempotency-Key": floor.suffix},
                                           json={"lead_id": lead_id, "agent_id": agent_id, "campaign_id": campaign_id})
    finally:
        floor.services.gate.clock = gate_clock
    assert response.status == 403 and "opted_out" in json.dumps(await response.json())
    for call in calls:
        await floor.recordings(call["call_id"])
    await runtime.logout(agent_id)
    assert await floor.services.outbox.flush(20)

    packet = tmp_path / "lead.zip"
    with _environment(floor, tmp_path / "cli-state"):
        started = time.perf_counter()
        code, out = await _dialer(capsys, "evidence", "--lead", lead_id, "--out", str(packet),
                                  "--legal-hold", "demand letter of 2026-11-20 (Doe v. Acme)", "--by", "counsel")
        built_in = time.perf_counter() - started
        assert code == 0, out
        assert "2 call(s)" in out and "2 recording(s)" in out
        code, out = await _dialer(capsys, "audit", "key", "--out", str(tmp_path / "agency.pem"))
        assert code == 0, out
        code, out = await _dialer(capsys, "evidence", "verify", str(packet), "--public-key", str(tmp_path / "agency.pem"))
        assert code == 0 and "verified" in out and "It does not prove:" in out, out
        with capsys.disabled():
            print(out)
        code, out = await _dialer(capsys, "audit", "verify", "--since", since)
        assert code == 0, out

        with zipfile.ZipFile(packet) as archive:
            evidence = json.loads(archive.read("data/evidence.json"))
            audio = {name: archive.read(name) for name in archive.namelist() if name.startswith("recordings/")}
            html = archive.read("report.html")
            assert archive.read("report.pdf").startswith(b"%PDF")
        found = evidence["findings"]
        _exactly_the_story(found, calls, phone, agent_id, consent, message_id)
        _the_audio_plays(found, audio, tmp_path)
        held = await floor.fetch("SELECT legal_hold, legal_hold_by FROM recordings WHERE call_id = ANY($1::text[])",
                                 [c["call_id"] for c in calls])
        assert [(row["legal_hold"], row["legal_hold_by"]) for row in held] == [(True, "counsel")] * 2
        audited = await floor.fetch("SELECT role, channel, recording_ids FROM evidence_packets WHERE requested_by = "
                                    "'counsel'")
        assert len(audited) == 1 and len(json.loads(audited[0]["recording_ids"])) == 2

        # The report, looked at: rendered by Chromium, kept in docs/ (the PDF is the same HTML).
        report = tmp_path / "report.html"
        report.write_bytes(html)
        await page.set_viewport_size({"width": 1100, "height": 900})
        await page.goto(report.as_uri())
        assert await page.locator("h1").inner_text() == f"Evidence packet: lead {lead_id}"
        await page.screenshot(path=str(DOCS / "evidence-report.png"), full_page=True)

        # Tampering, each caught and named.
        edited = tmp_path / "edited.zip"
        _rewrite(packet, edited, "report.html", html.replace(b"ALLOWED", b"ALLOWEd", 1))
        code, out = await _dialer(capsys, "evidence", "verify", str(edited), "--public-key", str(tmp_path / "agency.pem"))
        assert code == 1 and "report.html was changed after signing" in out, out

        decision_id = str(calls[1]["compliance_decision_id"])
        opt_out_entry = await floor.fetch(
            "SELECT e.* FROM audit_entries e JOIN opt_outs o ON e.record_key = o.opt_out_id WHERE o.phone = $1 "
            "AND e.chain = 'opt_out'", phone)
        (before,) = await floor.fetch("SELECT data_versions FROM compliance_decisions WHERE decision_id = $1",
                                      calls[1]["compliance_decision_id"])
        try:
            await floor.fetch("UPDATE compliance_decisions SET data_versions = data_versions || "
                              "'{\"federal_dnc\": \"2026-11-23\"}' WHERE decision_id = $1",
                              calls[1]["compliance_decision_id"])
            code, out = await _dialer(capsys, "audit", "verify", "--since", since)
            assert code == 1 and "BROKEN: chain compliance_decision, entry" in out and decision_id in out, out
            assert "changed: data_versions" in out
            await floor.fetch("DELETE FROM audit_entries WHERE chain = 'opt_out' AND seq = $1", opt_out_entry[0]["seq"])
            code, out = await _dialer(capsys, "audit", "verify", "--since", since)
            assert code == 1 and f"BROKEN: chain opt_out, entry {opt_out_entry[0]['seq']}" in out, out
            with capsys.disabled():
                print(out)
        finally:
            await floor.fetch("UPDATE compliance_decisions SET data_versions = $2 WHERE decision_id = $1",
                              calls[1]["compliance_decision_id"], before["data_versions"])
            row = opt_out_entry[0]
            await floor.fetch("INSERT INTO audit_entries (chain, seq, record_key, applied_at, origin, row_json, "
                              "prev_hash, entry_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                              row["chain"], row["seq"], row["record_key"], row["applied_at"], row["origin"],
                              row["row_json"], row["prev_hash"], row["entry_hash"])
        code, out = await _dialer(capsys, "audit", "verify", "--since", since)
        assert code == 0, out
    print(f"packet for 2 contacts built in {built_in:.2f} s")


def _exactly_the_story(found: dict[str, Any], calls: list[Any], phone: str, agent_id: str,
                       consent: dict[str, Any], message_id: str) -> None:
    first, second = found["contacts"]
    assert [c["call_id"] for c in found["contacts"]] == [c["call_id"] for c in calls]
    for contact in (first, second):
        decision = contact["decision"]
        assert decision["allowed"] and decision["phone"] == phone
        assert decision["data_versions"]["federal_dnc"] == "2026-11-24" and "sha256:" in decision["data_versions"]["rules"]
        assert decision["local_times"] and contact["local"][0].endswith("EST (America/New_York)")
        assert contact["caller_id"] == "+18885550123" and contact["campaign"]["dial_mode"] == "progressive"
        assert contact["amd"]["result"] == "HUMAN" and contact["times"]["greeting_ended_at"]
        assert len(contact["recordings"]) == 1 and contact["recordings"][0]["audio_verified"]
        assert contact["recordings"][0]["legal_hold"]
        assert contact["chain"] and contact["decision"]["chain"]
    assert first["two_second_rule"]["verdict"] == "safe_harbor" and first["abandoned"] and first["agent"] is None
    assert first["safe_harbor"]["played"] and "Acme Insurance" in first["safe_harbor"]["message"]
    assert first["safe_harbor"]["key_presses"] == []  # this person listened and hung up
    assert second["two_second_rule"]["verdict"] == "connected_in_time"
    assert second["two_second_rule"]["delay_seconds"] <= 2.0 and second["agent"]["agent_id"] == agent_id
    assert [d["code"] for d in second["dispositions"]] == ["do_not_call"]
    (opt_out,) = found["opt_outs"]
    assert opt_out["phone"] == phone and opt_out["call_id"] == second["call_id"]
    assert opt_out["no_contact_followed"] and opt_out["after"]["calls_placed"] == []
    assert opt_out["after"]["gate_blocked"] >= 1 and opt_out["after"]["gate_allowed"] == []
    (text,) = found["texts"]
    assert (text["message_id"], text["direction"], text["to_number"]) == (message_id, "outbound", phone)
    assert "your quote is ready" in text["body"] and text["delivery_status"] == "delivered"
    assert text["decision"]["allowed"] and text["chain"]
    assert opt_out["after"]["texts_sent"] == []
    (shown,) = found["consents"]
    assert shown["evidence_ref"] == consent["evidence_ref"] and shown["chain"]
    # The timeline: exactly these events. The campaign's gate pre-checks (one per run, allowed,
    # no call placed with them) are dated by the floor's fixed gate clock, the rest by the real one.
    events = [event["event"].split(" (")[0] for event in found["timeline"]]
    assert sorted(events) == sorted(["Consent obtained", "Gate check: allowed", "Gate check: allowed", "Call placed",
                                     "Call placed", "Text sent", "Disposition do_not_call", "Opt-out",
                                     "Contact blocked by the compliance gate"]), events
    real_clock = [event for event in events if event in ("Call placed", "Text sent", "Disposition do_not_call",
                                                         "Opt-out", "Contact blocked by the compliance gate")]
    assert real_clock == ["Call placed", "Call placed", "Text sent", "Disposition do_not_call", "Opt-out",
                          "Contact blocked by the compliance gate"], events
    assert found["summary"]["two_second_rule_kept"] and found["summary"]["no_contact_after_opt_out"]


def _the_audio_plays(found: dict[str, Any], audio: dict[str, bytes], workdir: Path) -> None:
    first, second = found["contacts"]
    harbor = _playable(audio[first["recordings"][0]["file"]], workdir)
    connected = _playable(audio[second["recordings"][0]["file"]], workdir)
    assert _wav_seconds(harbor) > 2.0 and _wav_seconds(connected) > 2.0
    # The abandoned call's recording holds the safe-harbor message itself (under the person's
    # voice: measured 0.42-1.0), the connected call's does not (about 0.06 without it).
    assert notice_match(harbor, SOUNDS / "safe-harbor.wav", seconds=3) > 0.25
    assert notice_match(connected, SOUNDS / "safe-harbor.wav", seconds=3) < 0.15


def _rewrite(packet: Path, out: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(packet) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.namelist():
            target.writestr(member, data if member == name else source.read(member))
