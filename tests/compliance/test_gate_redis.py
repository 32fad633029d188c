"""The gate and its lists against the real Redis (test DB, keys under the per-test prefix)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from compliance_rules.audit import MemoryAuditSink
from compliance_rules.gate import ComplianceGate
from compliance_rules.importer import ParseStats, iter_changes, iter_numbers
from compliance_rules.model import ContactRequest, Decision, DialMode
from compliance_rules.numbers import parse_number
from compliance_rules.optout import opt_out
from compliance_rules.policy import CampaignPolicy
from compliance_rules.store import DncStore
from tests.compliance.helpers import ALL_STATES, BOOK, codes, utc
from tests.support.fault_proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOW = utc("2026-03-03T16:00")  # Tue 11:00 Eastern, 10:00 Central: inside every window
MANUAL = CampaignPolicy(campaign_id="c1", dial_mode=DialMode.MANUAL)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[DncStore]:
    store = DncStore(redis_client, redis_prefix)
    for name in ("federal", *(f"state:{s}" for s in ALL_STATES)):
        await store.set_list_date(name, date(2026, 3, 1))
    yield store


def gate_for(store: DncStore, sink: MemoryAuditSink | None = None, **kwargs: float) -> ComplianceGate:
    return ComplianceGate(store, sink or MemoryAuditSink(), BOOK, **kwargs)  # type: ignore[arg-type]


async def test_import_plain_zip_gzip_and_check(store: DncStore, tmp_path: Path) -> None:
    plain = tmp_path / "212.txt"
    plain.write_text("2125550100\n2125550101\r\n\n2125559999\n")
    archive = tmp_path / "305.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("305.txt", "305,5550100\n305,5550102\nnot-a-number\n")
    gz = tmp_path / "850.txt.gz"
    gz.write_bytes(gzip.compress(b"8502220142\n"))
    results = []
    for path in (plain, archive, gz):
        stats = ParseStats()
        results.append(await store.import_full("federal", iter_numbers(path, stats), date(2026, 3, 2), stats))
    assert [(r.numbers, r.rejected) for r in results] == [(3, 0), (2, 1), (1, 0)]
    assert (await store.versions())["federal"] == "2026-03-02"
    for raw, expected in (("2125550100", True), ("2125559999", True), ("2125550102", False), ("3055550102", True), ("8502220142", True)):
        assert await store.contains("federal", parse_number(raw)) is expected, raw
    # A full re-import of 212 replaces that area code only.
    plain.write_text("2125550102\n")
    await store.import_full("federal", iter_numbers(plain, ParseStats()), date(2026, 3, 3))
    assert not await store.contains("federal", parse_number("2125550100"))
    assert await store.contains("federal", parse_number("2125550102"))
    assert await store.contains("federal", parse_number("3055550100"))


async def test_change_list_adds_and_deletes(store: DncStore, tmp_path: Path) -> None:
    changes = tmp_path / "changes.csv"
    changes.write_text("number,action,date\n2125550100,A,2026-03-02\n212,5550101,ADD\n2125550100,D,2026-03-03\ngarbage\n")
    stats = ParseStats()
    added, deleted = await store.apply_changes("federal", iter_changes(changes, stats), date(2026, 3, 3))
    assert (added, deleted, stats.rejected) == (2, 1, 1)
    assert not await store.contains("federal", parse_number("2125550100"))
    assert await store.contains("federal", parse_number("2125550101"))


async def test_batch_decisions_one_audit_batch(store: DncStore) -> None:
    await store.set_membership("federal", parse_number("2125550100"), True)
    await store.set_membership("state:FL", parse_number("3055550100"), True)
    await store.set_membership("litigator", parse_number("2125550102"), True)
    sink = MemoryAuditSink()
    gate = gate_for(store, sink)
    requests = [ContactRequest(p) for p in ("2125550100", "3055550100", "2125550102", "2125550103", "12")]
    decisions = await gate.decide_many(requests, MANUAL, NOW)
    assert [codes(d) for d in decisions] == [{"dnc_federal"}, {"dnc_state"}, {"litigator"}, set(), {"invalid_number"}]
    assert sink.batches == 1 and sink.decisions == decisions
    assert decisions[3].data_versions["federal_dnc"] == "2026-03-01"


async def test_opt_out_from_another_process_blocks_the_next_decision(
    store: DncStore, redis_url: str, redis_prefix: str
) -> None:
    gate = gate_for(store)
    request = ContactRequest("212-555-0177")
    assert (await gate.decide(request, MANUAL, NOW)).allowed
    env = {**os.environ, "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer", "dnc", "opt-out", "212-555-0177", "--source", "sms_keyword",
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert codes(await gate.decide(request, MANUAL, NOW)) == {"opted_out"}


async def test_cli_check_json(store: DncStore, redis_url: str, redis_prefix: str, pg_dsn: str,
                              tmp_path: Path) -> None:
    from crm_bridge.admin import Actor, Admin, Entity
    from crm_bridge.migrate import ensure_schema
    from crm_bridge.store import CrmStore

    await store.set_membership("federal", parse_number("2125550100"), True)
    # --campaign names a campaign of the CRM (an unknown one is refused: tests/cli/test_commands.py).
    await ensure_schema(pg_dsn)
    crm = await CrmStore.open(pg_dsn)
    campaign_id = f"c9-{redis_prefix.rstrip(':').rsplit(':', 1)[-1]}"
    try:
        await Admin(crm).create(Entity.CAMPAIGN, {"campaign_id": campaign_id, "name": "C9", "dial_mode": "preview"},
                                Actor("cli:test", "admin", "cli"))
    finally:
        await crm.close()
    env = {**os.environ, "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix, "DIALER_PG_DSN": pg_dsn,
           "DIALER_STATE_DIR": str(tmp_path / "state")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dialer", "check", "2125550100", "--zip", "90210", "--at", "2026-03-03T16:00:00Z",
        "--campaign", campaign_id, "--json", env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1, err.decode()
    record = json.loads(out)
    assert record["allowed"] is False and record["campaign_id"] == campaign_id
    assert {r["code"] for r in record["reasons"]} == {"dnc_federal"}
    assert set(record["timezones"]) == {"America/New_York", "America/Los_Angeles"}
    assert len(record["local_times"]) == 2


async def test_frequency_cap_reservation_is_atomic_across_racers(store: DncStore) -> None:
    gate = gate_for(store)
    request = ContactRequest("305-555-0190", lead_id="lead-fl")
    results = await asyncio.gather(*(gate.decide(request, MANUAL, NOW, reserve_attempt=True) for _ in range(8)))
    assert sum(d.allowed for d in results) == 3  # Fla. Stat. 501.616(6)(b)
    assert all(codes(d) == {"frequency_cap"} for d in results if not d.allowed)
    # 24 hours later the window has moved on.
    assert (await gate.decide(request, MANUAL, NOW + timedelta(hours=24, minutes=1))).allowed


async def test_an_attempt_exactly_24_hours_old_still_takes_a_slot(store: DncStore) -> None:
    # Fla. Stat. 501.616(6)(b), read as a closed 24-hour window (as `rules._check_caps` reads it):
    # the reservation refuses a fourth attempt at exactly 24 h after the first, and allows it 1 ms
    # later; an attempt another controller stamped 2 s ahead counts at once.
    gate = gate_for(store)
    request = ContactRequest("305-555-0192", lead_id="lead-edge")
    first = NOW - timedelta(hours=24)
    for at in (first, NOW - timedelta(hours=2), NOW - timedelta(hours=1)):
        assert (await gate.decide(request, MANUAL, at, reserve_attempt=True)).allowed
    assert codes(await gate.decide(request, MANUAL, NOW)) == {"frequency_cap"}
    assert codes(await gate.decide(request, MANUAL, NOW, reserve_attempt=True)) == {"frequency_cap"}
    assert (await gate.decide(request, MANUAL, NOW + timedelta(milliseconds=1), reserve_attempt=True)).allowed
    ahead = ContactRequest("305-555-0193", lead_id="lead-ahead")
    for at in (NOW + timedelta(seconds=2), NOW - timedelta(hours=2), NOW - timedelta(hours=1)):
        assert (await gate.decide(ahead, MANUAL, at, reserve_attempt=True)).allowed
    assert codes(await gate.decide(ahead, MANUAL, NOW)) == {"frequency_cap"}


async def test_a_lead_dialed_by_its_campaign_and_then_by_hand_is_one_person(store: DncStore) -> None:
    # Fla. Stat. 501.616(6)(b) counts calls to a person "regardless of the number used": three
    # campaign attempts under the lead id, then a click-to-call of the same number without a
    # lead id is the fourth; and the other way round.
    gate = gate_for(store)
    campaign = ContactRequest("305-555-0194", lead_id="lead-twice")
    for minutes in (30, 20, 10):
        assert (await gate.decide(campaign, MANUAL, NOW - timedelta(minutes=minutes), reserve_attempt=True)).allowed
    by_hand = ContactRequest("(305) 555-0194")
    assert codes(await gate.decide(by_hand, MANUAL, NOW)) == {"frequency_cap"}
    assert codes(await gate.decide(by_hand, MANUAL, NOW, reserve_attempt=True)) == {"frequency_cap"}
    # Three attempts by hand first: the campaign's lead is then capped too; one attempt recorded
    # under both keys still counts once (two by hand + one with the lead = 3, not 4).
    by_hand_first = ContactRequest("305-555-0195")
    for minutes in (30, 20):
        assert (await gate.decide(by_hand_first, MANUAL, NOW - timedelta(minutes=minutes), reserve_attempt=True)).allowed
    with_lead = ContactRequest("305-555-0195", lead_id="lead-later")
    assert (await gate.decide(with_lead, MANUAL, NOW - timedelta(minutes=10), reserve_attempt=True)).allowed
    decision = await gate.decide(with_lead, MANUAL, NOW)
    assert codes(decision) == {"frequency_cap"} and "3 attempts" in decision.reasons[0].message


async def test_missing_time_zone_data_blocks_with_a_reason(store: DncStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # As when the tz database lacks a zone the numbering data names: the gate cannot judge the
    # window, so it blocks (gate_unavailable), and the blocked decision is still recorded.
    from zoneinfo import ZoneInfoNotFoundError

    from compliance_rules import rules

    def no_zone(name: str) -> object:
        raise ZoneInfoNotFoundError(f"No time zone found with key {name}")

    monkeypatch.setattr(rules, "_zone", no_zone)
    sink = MemoryAuditSink()
    decision = await gate_for(store, sink).decide(ContactRequest("2125550100"), MANUAL, NOW)
    assert codes(decision) == {"gate_unavailable"} and "ZoneInfoNotFoundError" in decision.reasons[0].message
    assert [d.decision_id for d in sink.decisions] == [decision.decision_id]


async def test_one_lead_that_cannot_be_judged_blocks_only_itself(store: DncStore) -> None:
    # A consent time without a zone (a CRM bug) cannot be compared: that lead is blocked with
    # gate_unavailable and recorded; the others in its batch are decided as usual.
    from compliance_rules.model import ConsentKind, ConsentRecord

    broken = ContactRequest("2125550101", lead_id="lead-naive",
                            consents=(ConsentRecord(ConsentKind.PEWC, datetime(2026, 1, 1)),))
    sink = MemoryAuditSink()
    good, bad, also_good = await gate_for(store, sink).decide_many(
        [ContactRequest("2125550102"), broken, ContactRequest("3055550103")], MANUAL, NOW)
    assert good.allowed and also_good.allowed
    assert codes(bad) == {"gate_unavailable"} and "TypeError" in bad.reasons[0].message
    assert len(sink.decisions) == 3


async def test_a_time_without_a_zone_blocks_instead_of_guessing_one(store: DncStore) -> None:
    sink = MemoryAuditSink()
    decision = await gate_for(store, sink).decide(ContactRequest("2125550100"), MANUAL, datetime(2026, 3, 3, 16))
    assert codes(decision) == {"gate_unavailable"} and "ValueError" in decision.reasons[0].message
    assert len(sink.decisions) == 1


async def test_attempts_count_across_campaigns_with_the_same_subject(store: DncStore) -> None:
    gate = gate_for(store)
    request = ContactRequest("305-555-0191", lead_id="lead-x")
    other = CampaignPolicy(campaign_id="c2", dial_mode=DialMode.MANUAL)
    for policy in (MANUAL, other, MANUAL):
        assert (await gate.decide(request, policy, NOW, reserve_attempt=True)).allowed
    assert codes(await gate.decide(request, other, NOW)) == {"frequency_cap"}


async def test_redis_not_listening_blocks_everything() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/13", socket_connect_timeout=0.2)
    try:
        gate = gate_for(DncStore(client, "nowhere:"))
        decisions = await gate.decide_many([ContactRequest("2125550100"), ContactRequest("3055550100")], MANUAL, NOW)
    finally:
        await client.aclose()
    assert all(codes(d) == {"gate_unavailable"} and not d.allowed for d in decisions)


async def test_redis_stalled_or_cut_blocks_within_the_budget(store: DncStore, redis_prefix: str) -> None:
    async with FaultProxy("127.0.0.1", 6379) as proxy:
        client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/13", socket_connect_timeout=1.0)
        try:
            gate = gate_for(DncStore(client, redis_prefix), redis_budget=0.2)
            assert (await gate.decide(ContactRequest("2125550100"), MANUAL, NOW)).allowed
            proxy.stall()
            proxy.cut()
            loop = asyncio.get_running_loop()
            started = loop.time()
            stalled = await gate.decide_many([ContactRequest("2125550100")] * 3, MANUAL, NOW)
            assert loop.time() - started < 2.0
            assert all(codes(d) == {"gate_unavailable"} for d in stalled)
            proxy.refuse()
            refused = await gate.decide(ContactRequest("2125550100"), MANUAL, NOW)
            assert codes(refused) == {"gate_unavailable"}
            proxy.restore()
            assert (await gate.decide(ContactRequest("2125550100"), MANUAL, NOW)).allowed
        finally:
            await client.aclose()


class FailingSink:
    async def record(self, decisions: Sequence[Decision]) -> None:
        raise ConnectionError("outbox down")


async def test_unrecorded_decision_is_never_allowed(store: DncStore) -> None:
    gate = ComplianceGate(store, FailingSink(), BOOK)
    decision = await gate.decide(ContactRequest("2125550100"), MANUAL, NOW)
    assert not decision.allowed and codes(decision) == {"gate_unavailable"}


async def test_missing_rule_data_blocks(store: DncStore) -> None:
    gate = ComplianceGate(store, MemoryAuditSink(), None)
    assert codes(await gate.decide(ContactRequest("2125550100"), MANUAL, NOW)) == {"gate_unavailable"}


async def test_opt_out_service_function(store: DncStore) -> None:
    result = await opt_out(store, "+1 305 555 0111", "disposition", lead_id="L1")
    assert result.phone == "+13055550111" and result.lead_id == "L1"
    assert await store.contains("optout", parse_number("3055550111"))


class CountingSink(MemoryAuditSink):
    fail = False

    async def record(self, decisions: Sequence[Decision]) -> None:
        await asyncio.sleep(0.001)
        if self.fail:
            raise ConnectionError("outbox down")
        await super().record(decisions)


async def test_concurrent_single_decisions_are_recorded_in_one_batch(store: DncStore) -> None:
    from compliance_rules.audit import CoalescingAuditSink

    inner = CountingSink()
    # A generous Redis budget: this is about batching the records, not about Redis's speed on a
    # CPU-starved test machine (the budget's own behaviour is tested with a stalled Redis).
    gate = ComplianceGate(store, CoalescingAuditSink(inner, max_delay=0.02), BOOK, redis_budget=5.0)
    requests = [ContactRequest(f"212555{n:04d}") for n in range(200, 220)]
    decisions = await asyncio.gather(*(gate.decide(r, MANUAL, NOW) for r in requests))
    assert all(d.allowed for d in decisions)
    assert len(inner.decisions) == 20 and inner.batches < 5
    inner.fail = True
    failed = await asyncio.gather(*(gate.decide(r, MANUAL, NOW) for r in requests[:3]))
    assert all(codes(d) == {"gate_unavailable"} for d in failed)


@pytest.mark.timeout(240)  # nine `dialer` processes, each importing the whole CLI (seconds each on a busy CI box)
async def test_cli_import_zip_and_user_errors(store: DncStore, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    archive = tmp_path / "registry.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("212.txt", "2125550100\n2125550101\n")
    env = {**os.environ, "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix}

    async def dialer(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dialer", *args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await dialer("dnc", "import", str(archive), "--list", "federal", "--date", "2026-03-02")
    assert code == 0, err
    assert "2 numbers in 1 area codes" in out and "100%" in err
    assert (await store.versions())["federal"] == "2026-03-02"
    code, out, _ = await dialer("dnc", "check", "212-555-0101", "--list", "federal")
    assert code == 0 and "is on the federal list" in out
    for args, fragment in (
        (("dnc", "import", str(archive), "--list", "national"), "unknown list"),
        (("dnc", "import", str(archive), "--list", "state:ZZ"), "unknown state"),
        (("dnc", "import", str(tmp_path / "missing.txt"), "--list", "federal"), "cannot read"),
        (("dnc", "import", str(archive), "--list", "federal", "--date", "March"), "not a YYYY-MM-DD date"),
        (("dnc", "import", str(archive), "--list", "state:TX", "--date", "2099-01-01"), "days ahead"),
        (("dnc", "add", "12", "--list", "internal"), "not a valid US phone number"),
        (("check", "2125550100", "--zip", "abc"), "not a ZIP code"),
    ):
        code, out, err = await dialer(*args)
        assert code == 2, (args, out, err)
        assert fragment in err and "Traceback" not in err and err.count("\n") == 1, err


async def test_cli_status_shows_deadlines_and_warns_before_them(
    redis_client: aioredis.Redis, redis_url: str, redis_prefix: str
) -> None:
    store = DncStore(redis_client, redis_prefix)
    today = datetime.now(UTC).date()
    await store.set_list_date("federal", today - timedelta(days=20), 5)  # 11 days left: due soon
    await store.set_list_date("state:WY", today)  # 60 days left
    env = {**os.environ, "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix}

    async def status(*extra: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dialer", "dnc", "status", *extra, env=env, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await status()
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()}
    deadline = today - timedelta(days=20) + timedelta(days=31)
    assert f"usable through {deadline}" in lines["federal"] and "DUE SOON (11 days left), 5 numbers" in lines["federal"]
    assert "ok (60 days left)" in lines["state:WY"]
    assert "missing" in lines["state:TX"]
    assert "due soon (within 14 days): federal" in err

    await store.set_list_date("litigator", today - timedelta(days=40))
    code, out, err = await status("--json")
    assert code == 1 and "stale or missing, the gate blocks: litigator" not in out
    lists = {row["list"]: row for row in json.loads(out)["lists"]}
    assert lists["litigator"]["status"] == "stale" and lists["litigator"]["days_left"] == -9
    assert lists["federal"]["count"] == 5
