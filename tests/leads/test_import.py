"""List import with scrub against the real PostgreSQL and Redis: a 100,000-row file with bad rows,
duplicates, DNC hits and unknown locations gives exactly the report a recount expects."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from compliance_rules.ruleset import load_rulebook
from compliance_rules.scrub import BatchScrubber
from compliance_rules.store import DncStore
from crm_bridge.lead_import import ImportInputError, ImportPlan, import_leads, new_import_id
from crm_bridge.lead_mapping import parse_mapping
from tests.leads.plan import MAPPING, LeadFile, make_lead_file

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BOOK = load_rulebook()


async def load_lists(dnc: DncStore, plan: LeadFile) -> None:
    today = datetime.now(UTC).date()
    for name, numbers in [("federal", plan.federal), ("state:TX", plan.states["TX"]), ("state:FL", plan.states["FL"]),
                          ("internal", plan.internal), ("litigator", plan.litigator), ("optout", plan.optout)]:
        await dnc.import_full(name, [np.array(sorted(numbers), dtype=np.int64)], today)
    for state in BOOK.state_dnc_lists:
        if state not in ("TX", "FL"):
            await dnc.set_list_date(f"state:{state}", today)


async def seed_crm(conn: asyncpg.Connection, plan: LeadFile) -> None:
    emails = sorted(plan.crm_emails)
    await conn.copy_records_to_table(
        "leads", columns=["lead_id", "first_name", "phones", "email"],
        records=[(f"crm-{i}", "Existing", [f"+1{n}"], emails[i] if i < len(emails) else None)
                 for i, n in enumerate(sorted(plan.crm_phones))],
    )
    await conn.execute("INSERT INTO campaigns (campaign_id, name) VALUES ('medsupp', 'Medicare supplement')")


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def test_a_100k_row_file_gives_exactly_the_report_a_recount_expects(
    crm_dsn: str, dnc: DncStore, tmp_path: Path
) -> None:
    plan = make_lead_file(100_000)
    source = tmp_path / "leads.csv"
    line_ends = plan.write(source)
    conn = await asyncpg.connect(crm_dsn)
    await seed_crm(conn, plan)
    await load_lists(dnc, plan)
    expected = plan.recount()
    kinds = Counter(row.kind for row in plan.rows)
    assert min(kinds.values()) >= 100, kinds  # every kind of row is there in numbers

    job = ImportPlan(new_import_id(), source, parse_mapping(MAPPING), "leads.csv", "medsupp", tmp_path / "report.csv")
    phases: list[str] = []
    outcome = await import_leads(job, conn, BatchScrubber(dnc, BOOK), progress=lambda p, d, t: phases.append(p))
    assert {"read", "scrub", "write"} <= set(phases)

    # The counts.
    statuses = Counter(status for status, _, _ in expected)
    counts = outcome.counts
    assert (counts.rows, counts.accepted, counts.invalid, counts.duplicate, counts.rejected) == (
        len(plan.rows), statuses["accepted"], statuses["invalid"], statuses["duplicate"], statuses["rejected"])
    reasons = Counter(reason for _, found, _ in expected for reason in found)
    assert {k: v for k, v in counts.reasons.items() if v} == dict(reasons)
    assert counts.dnc_states == {"TX": len(plan.states["TX"]), "FL": len(plan.states["FL"])}
    assert outcome.warnings == ()  # every list loaded today

    # The report, row by row.
    report = read_report(tmp_path / "report.csv")
    assert len(report) == len(plan.rows)
    for number, (line, (status, found, earlier)) in enumerate(zip(report, expected, strict=True), start=1):
        assert (int(line["row"]), int(line["line"])) == (number, line_ends[number - 1])
        assert (line["status"], frozenset(filter(None, line["reasons"].split(";")))) == (status, found), (
            number, plan.rows[number - 1].kind, line)
        if earlier is not None:
            assert line["detail"] == f"same phone or e-mail as row {earlier}"
        assert bool(line["lead_id"]) == (status == "accepted")
        assert line["detail"] or status == "accepted"
    assert not (tmp_path / "report.csv.part").exists()

    # The CRM: the accepted leads, their consents and campaign memberships, the import's row.
    accepted = [plan.rows[i] for i, (status, _, _) in enumerate(expected) if status == "accepted"]
    assert await conn.fetchval("SELECT count(*) FROM leads WHERE import_id = $1", job.import_id) == len(accepted)
    assert await conn.fetchval(
        "SELECT count(*) FROM consent_records c JOIN leads l USING (lead_id) WHERE l.import_id = $1", job.import_id
    ) == sum(row.consent for row in accepted)
    assert await conn.fetchval("SELECT count(*) FROM campaign_leads WHERE campaign_id = 'medsupp'") == len(accepted)
    stored = await conn.fetchrow("SELECT counts, list_dates, label FROM lead_imports WHERE import_id = $1", job.import_id)
    assert json.loads(stored["counts"]) == counts.to_json() and stored["label"] == "leads.csv"
    assert json.loads(stored["list_dates"])["federal"] == datetime.now(UTC).date().isoformat()

    # One lead as written: E.164 phones, names split, e-mail lower-cased, state upper-cased, custom fields.
    first = next(i for i, (status, _, _) in enumerate(expected) if status == "accepted")
    lead = await conn.fetchrow("SELECT * FROM leads WHERE lead_id = $1", f"{job.import_id}-{first + 1}")
    row = plan.rows[first]
    assert lead["phones"] == [f"+1{n}" for n in row.phones] and lead["email"] == row.email
    assert lead["pipeline_stage"] == "new_lead" and lead["source"] == "import:leads.csv"
    assert (lead["state"] or "NY") == "NY" and lead["zip"] == row.cells[7]
    assert json.loads(lead["custom_fields"]) == ({"policy": row.cells[10]} if row.cells[10] else {})

    # The same import again (a retry after a crash): nothing written twice.
    again = await import_leads(job, conn, BatchScrubber(dnc, BOOK))
    assert again.already_committed and again.counts == counts
    assert await conn.fetchval("SELECT count(*) FROM leads WHERE import_id = $1", job.import_id) == len(accepted)
    await conn.close()


async def test_a_second_import_of_the_same_file_finds_every_lead_already_in_the_crm(
    crm_dsn: str, dnc: DncStore, tmp_path: Path
) -> None:
    plan = make_lead_file(3_000, seed=11)
    source = tmp_path / "leads.csv"
    plan.write(source)
    conn = await asyncpg.connect(crm_dsn)
    await seed_crm(conn, plan)
    await load_lists(dnc, plan)
    first = await import_leads(ImportPlan(new_import_id(), source, parse_mapping(MAPPING), "a"), conn,
                               BatchScrubber(dnc, BOOK))
    second = await import_leads(ImportPlan(new_import_id(), source, parse_mapping(MAPPING), "b"), conn,
                                BatchScrubber(dnc, BOOK))
    assert first.counts.accepted > 1000
    assert second.counts.accepted == 0 and second.counts.invalid == first.counts.invalid
    # Every accepted lead is now a CRM duplicate; scrubbed-out rows were not written, so they are
    # scrubbed out again.
    assert second.counts.duplicate == first.counts.duplicate + first.counts.accepted
    assert second.counts.reasons["duplicate_in_crm"] >= first.counts.accepted
    assert second.counts.rejected == first.counts.rejected
    await conn.close()


async def test_bad_input_writes_nothing(crm_dsn: str, dnc: DncStore, tmp_path: Path) -> None:
    conn = await asyncpg.connect(crm_dsn)
    cases = [
        (b"", "empty"),
        (b"Name,Phone\nDana,2125550142\n", "no column 'Telephone'"),
        (b"Name,Telephone\nDana,2125550142\n\xff\xfe,1\n", "line 3 is not UTF-8"),
    ]
    for body, message in cases:
        source = tmp_path / "bad.csv"
        source.write_bytes(body)
        job = ImportPlan(new_import_id(), source, parse_mapping("name=Name,phone=Telephone"), "bad.csv",
                         report=tmp_path / "report.csv")
        with pytest.raises(ImportInputError, match=message):
            await import_leads(job, conn, BatchScrubber(dnc, BOOK))
        assert await conn.fetchval("SELECT count(*) FROM leads") == 0
        assert await conn.fetchval("SELECT count(*) FROM lead_imports") == 0
        assert not (tmp_path / "report.csv").exists()
    await conn.close()


@pytest.mark.parametrize("rows", [120, 3_000])  # fewer unique numbers than the CRM has leads, and more
async def test_crm_duplicates_are_found_whichever_side_is_sent(
    crm_dsn: str, dnc: DncStore, tmp_path: Path, rows: int
) -> None:
    plan = make_lead_file(rows, seed=rows)
    source = tmp_path / "leads.csv"
    plan.write(source)
    conn = await asyncpg.connect(crm_dsn)
    await seed_crm(conn, plan)
    await conn.execute("ANALYZE leads")  # the row estimate that picks the side
    assert (await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'leads'::regclass") < rows) == (rows > 500)
    await load_lists(dnc, plan)
    outcome = await import_leads(ImportPlan(new_import_id(), source, parse_mapping(MAPPING), "x"), conn,
                                 BatchScrubber(dnc, BOOK))
    expected = Counter(reason for _, found, _ in plan.recount() for reason in found)
    assert outcome.counts.reasons["duplicate_in_crm"] == expected["duplicate_in_crm"] > 0
    assert outcome.counts.reasons["duplicate_in_file"] == expected["duplicate_in_file"]
    await conn.close()

