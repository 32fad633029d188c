"""The audit trail on a real PostgreSQL: rows applied through the outbox are chained where they
are applied; `verify_trail` names the first broken link for each kind of tampering; two
outboxes applying at once (two controllers) never fork a chain."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from crm_bridge.audit_chain import CALL_CHAIN
from crm_bridge.audit_keys import AuditSigningKey
from crm_bridge.audit_log import AuditReport, append_row, read_heads, sign_checkpoint, verify_trail
from crm_bridge.outbox import Outbox
from tests.crm import factories

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def conn(migrated_scratch_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(migrated_scratch_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _deliver(state_dir: Path, dsn: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    async with Outbox(state_dir, dsn) as outbox:
        await outbox.put_many(items)
        assert await outbox.flush(20)


async def _verify(conn: asyncpg.Connection, key: AuditSigningKey) -> AuditReport:
    return await verify_trail(conn, trusted_keys={key.public_key})


async def _seed(tmp_path: Path, dsn: str) -> dict[str, Any]:
    call = factories.ended_call("call-a")
    decision = factories.decision(allowed=True, reasons=[])
    recording = factories.recording("call-a")
    items: list[tuple[str, dict[str, Any]]] = [
        ("lead_upsert", factories.lead()),
        ("compliance_decision", decision),
        ("call", factories.call("call-a", 1)),
        ("call", call),
        ("call", factories.call("call-a", 2)),  # late and older: changes nothing, chains nothing
        ("recording", recording),
        ("disposition", factories.disposition("do_not_call", call_id="call-a")),
        ("opt_out", factories.opt_out(call_id="call-a")),
    ]
    await _deliver(tmp_path / "state", dsn, items)
    return {"decision": decision, "recording": recording}


async def test_applied_rows_are_chained_once_each_and_the_trail_verifies(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    seeded = await _seed(tmp_path, migrated_scratch_dsn)
    counts = {row["chain"]: row["n"] for row in await conn.fetch(
        "SELECT chain, count(*) AS n FROM audit_entries GROUP BY chain")}
    # call: version 1, version 9, then the recording's link (the old version 2 changed nothing).
    assert counts == {"consent": 1, "compliance_decision": 1, "call": 3, "recording": 1, "disposition": 1,
                      "opt_out": 1}
    origins = await conn.fetch("SELECT origin FROM audit_entries")
    assert all(row["origin"] and ":" in row["origin"] for row in origins)
    # Replaying the same outbox records elsewhere (another source) writes nothing new either.
    await _deliver(tmp_path / "other", migrated_scratch_dsn, [("compliance_decision", seeded["decision"])])
    assert await conn.fetchval("SELECT count(*) FROM audit_entries WHERE chain = 'compliance_decision'") == 1

    assert await sign_checkpoint(conn, signing_key) is not None
    report = await _verify(conn, signing_key)
    assert report.ok, report.first_break
    assert {c.chain: c.entries for c in report.chains if c.entries}["call"] == 3


async def test_an_edited_decision_row_is_named(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    seeded = await _seed(tmp_path, migrated_scratch_dsn)
    decision_id = seeded["decision"]["decision_id"]
    await conn.execute("UPDATE compliance_decisions SET allowed = false WHERE decision_id = $1", decision_id)
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and broken.chain == "compliance_decision" and broken.problem == "row_edited"
    assert decision_id in broken.sentence() and "allowed" in broken.sentence()


async def test_a_deleted_row_and_a_row_written_around_the_trail_are_named(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    await _seed(tmp_path, migrated_scratch_dsn)
    await conn.execute("DELETE FROM opt_outs")
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and (broken.chain, broken.problem) == ("opt_out", "row_deleted")
    await conn.execute("INSERT INTO opt_outs (opt_out_id, phone, source, created_at) "
                       "SELECT opt_out_id, phone, source, created_at FROM (SELECT 'sneaky' AS opt_out_id, "
                       "'+12125550100' AS phone, 'psql' AS source, now() AS created_at) s")
    await conn.execute("DELETE FROM audit_entries WHERE chain = 'opt_out'")  # and no trace of the old one
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and (broken.chain, broken.problem) == ("opt_out", "row_unchained")
    assert "sneaky" in broken.detail


async def test_deleted_edited_and_reordered_entries_are_named(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    await _seed(tmp_path, migrated_scratch_dsn)
    await conn.execute("DELETE FROM audit_entries WHERE chain = 'call' AND seq = 2")
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and (broken.chain, broken.seq, broken.problem) == ("call", 2, "missing")

    await _seed(tmp_path / "again", migrated_scratch_dsn)  # fresh rows: a fresh, whole chain for other kinds
    await conn.execute("UPDATE audit_entries SET row_json = replace(row_json, 'crm_api', 'psql') "
                       "WHERE chain = 'opt_out' AND seq = 1")
    report = await _verify(conn, signing_key)
    opt_out = next(c for c in report.chains if c.chain == "opt_out")
    assert opt_out.broken is not None and (opt_out.broken.seq, opt_out.broken.problem) == (1, "edited")

    # Two decisions swapped in the order (renumbered so no seq is missing).
    await conn.execute("UPDATE audit_entries SET seq = seq + 100 WHERE chain = 'compliance_decision'")
    await conn.execute("UPDATE audit_entries SET seq = CASE WHEN seq = 101 THEN 2 ELSE 1 END "
                       "WHERE chain = 'compliance_decision'")
    report = await _verify(conn, signing_key)
    decisions = next(c for c in report.chains if c.chain == "compliance_decision")
    assert decisions.broken is not None and decisions.broken.seq == 1 and decisions.broken.problem == "relinked"


async def test_a_truncated_tail_and_a_forged_checkpoint_are_named(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    await _seed(tmp_path, migrated_scratch_dsn)
    await sign_checkpoint(conn, signing_key)
    # The last entries deleted, and their rows with them: only the signed checkpoint remembers.
    await conn.execute("DELETE FROM audit_entries WHERE chain = 'call' AND seq = 3")
    await conn.execute("UPDATE calls SET recording_id = NULL")
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and (broken.chain, broken.problem) == ("call", "missing")
    assert "signs entries up to 3" in broken.detail

    await conn.execute("UPDATE audit_checkpoints SET statement = replace(statement, '\"seq\":3', '\"seq\":2')")
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and broken.problem == "checkpoint" and "bad signature" in broken.detail
    # A checkpoint signed by a key nobody trusts is not evidence at all.
    other = AuditSigningKey.generate()
    report = await verify_trail(conn, trusted_keys={other.public_key})
    assert report.untrusted_checkpoints >= 1


async def test_two_controllers_applying_at_once_never_fork_a_chain(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    def batch(tag: str) -> list[tuple[str, dict[str, Any]]]:
        items: list[tuple[str, dict[str, Any]]] = []
        for i in range(150):
            call_id = f"{tag}-{i}"
            items += [("compliance_decision", factories.decision(lead_id=f"lead-{tag}-{i}")),
                      ("call", factories.call(call_id, 1)), ("opt_out", factories.opt_out(opt_out_id=str(uuid.uuid4())))]
        return items

    async with Outbox(tmp_path / "a", migrated_scratch_dsn, batch_size=20) as first, \
            Outbox(tmp_path / "b", migrated_scratch_dsn, batch_size=20) as second:
        await asyncio.gather(first.put_many(batch("a")), second.put_many(batch("b")))
        assert all(await asyncio.gather(first.flush(40), second.flush(40)))
    heads = await read_heads(conn)
    assert {chain: head.seq for chain, head in heads.items()} == {"compliance_decision": 300, "call": 300,
                                                                 "opt_out": 300}
    # Both sources are interleaved in each chain, and every link holds.
    sources = await conn.fetch("SELECT DISTINCT split_part(origin, ':', 1) FROM audit_entries WHERE chain = 'call'")
    assert len(sources) == 2
    report = await _verify(conn, signing_key)
    assert report.ok, report.first_break


async def test_a_calls_trunks_are_chained_and_entries_written_before_them_still_verify(
    tmp_path: Path, migrated_scratch_dsn: str, conn: asyncpg.Connection, signing_key: AuditSigningKey
) -> None:
    """`calls.trunk` and `trunk_attempts` (same-call failover) are evidence: an edit of them is
    named; a call chained before they were (its entry has no such columns) still verifies."""
    failed = [{"trunk": "carrier-a", "cause": 34, "sip_code": 503, "at": "2026-11-29T11:27:56.4Z"}]
    await _deliver(tmp_path / "state", migrated_scratch_dsn, [
        ("call", factories.call("call-failover", 1, trunk="carrier-b", trunk_attempts=failed))])
    entry = json.loads(await conn.fetchval(
        "SELECT row_json FROM audit_entries WHERE chain = 'call' AND record_key = 'call-failover'"))
    assert entry["trunk"] == "carrier-b" and entry["trunk_attempts"] == failed
    # A call chained before the columns were: its entry holds the older columns only.
    older = replace(CALL_CHAIN, columns=tuple(c for c in CALL_CHAIN.columns if not c.startswith("trunk")))
    await conn.execute("INSERT INTO calls (call_id, version, direction, lead_number, requested_at, trunk) "
                       "VALUES ('call-older', 1, 'outbound', '+14045550123', now(), 'trunk')")
    assert await append_row(conn, older, "call-older", origin=None) is not None
    assert await sign_checkpoint(conn, signing_key) is not None
    report = await _verify(conn, signing_key)
    assert report.ok, report.first_break

    await conn.execute("UPDATE calls SET trunk_attempts = '[]' WHERE call_id = 'call-failover'")
    broken = (await _verify(conn, signing_key)).first_break
    assert broken is not None and (broken.chain, broken.problem) == ("call", "row_edited")
    assert "call-failover" in broken.sentence() and "trunk_attempts" in broken.sentence()
