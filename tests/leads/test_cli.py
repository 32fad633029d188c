"""`dialer leads import` as a user runs it: a summary line, a report, a progress bar only on a
terminal, one sentence and a non-zero exit for bad input."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from compliance_rules.store import DncStore
from tests.leads.plan import MAPPING, make_lead_file
from tests.leads.test_import import load_lists, seed_crm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str, terminal: bool = False) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "dialer", "leads", "import", *args]
    if not terminal:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=100, check=False)
        return done.returncode, done.stdout, done.stderr
    main, child = os.openpty()  # stderr on a terminal: the progress bar is drawn there
    try:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=child, text=True)
        os.close(child)
        chunks = []
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        out, _ = process.communicate(timeout=100)
        return process.returncode, out, b"".join(chunks).decode(errors="replace")
    finally:
        os.close(main)


@pytest.fixture
def env(crm_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DIALER_PG_DSN": crm_dsn, "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix,
            "DIALER_STATE_DIR": str(tmp_path / "state"), "DIALER_LOG_LEVEL": "warning"}


async def test_import_prints_a_summary_and_writes_the_report(
    env: dict[str, str], crm_dsn: str, dnc: DncStore, tmp_path: Path
) -> None:
    plan = make_lead_file(5_000, seed=21)
    source = tmp_path / "leads.csv"
    plan.write(source)
    conn = await asyncpg.connect(crm_dsn)
    await seed_crm(conn, plan)
    await load_lists(dnc, plan)
    report = tmp_path / "report.csv"
    code, out, err = run(env, str(source), "--map", MAPPING, "--campaign", "medsupp", "--report", str(report))
    assert code == 0, err
    expected = plan.recount()
    accepted = sum(status == "accepted" for status, _, _ in expected)
    assert out.count("\n") == 1 and out.startswith("imported leads.csv as imp_")
    assert f"5000 rows: {accepted} accepted" in out and f"report {report}" in out
    assert "\r" not in err and "reading" not in err  # no progress bar when stderr is not a terminal
    with report.open(newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == [status for status, _, _ in expected]
    assert await conn.fetchval("SELECT count(*) FROM campaign_leads") == accepted
    await conn.close()


async def test_import_into_a_named_list_joins_the_campaigns_it_is_assigned_to(
    env: dict[str, str], crm_dsn: str, tmp_path: Path
) -> None:
    """`--list` takes a list's name (or id): the leads go on it and join every campaign it is
    assigned to, their memberships naming the list; `--campaign` adds one more campaign."""
    plan = make_lead_file(2_000, seed=8)
    source = tmp_path / "leads.csv"
    plan.write(source)
    conn = await asyncpg.connect(crm_dsn)
    await seed_crm(conn, plan)
    await conn.execute("INSERT INTO campaigns (campaign_id, name) VALUES ('annuity', 'Annuities'), ('final', 'Final')")
    await conn.execute("INSERT INTO lead_lists (list_id, name) VALUES ('spring-26', 'Spring mailers')")
    await conn.execute("INSERT INTO campaign_lists (campaign_id, list_id) VALUES ('medsupp', 'spring-26'), "
                       "('annuity', 'spring-26')")
    code, out, err = run(env, str(source), "--map", MAPPING, "--list", "Spring mailers", "--campaign", "final")
    assert code == 0, err
    import_id = out.split(" as ")[1].split(":")[0]
    accepted = await conn.fetchval("SELECT count(*) FROM leads WHERE import_id = $1", import_id)
    assert accepted > 0
    assert await conn.fetchval("SELECT count(*) FROM leads WHERE import_id = $1 AND list_id = 'spring-26'",
                               import_id) == accepted
    members = {(row["campaign_id"], row["list_id"]): row["n"] for row in await conn.fetch(
        "SELECT campaign_id, list_id, count(*) AS n FROM campaign_leads GROUP BY 1, 2")}
    assert members == {("medsupp", "spring-26"): accepted, ("annuity", "spring-26"): accepted,
                       ("final", None): accepted}
    await conn.close()


def test_an_unknown_list_is_one_sentence(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("Name,Phone\nDana,2125550142\n")
    code, out, err = run(env, str(good), "--map", "phone=Phone", "--list", "Nowhere")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no lead list 'Nowhere'" in err and "dialer lists create" in err


async def test_progress_bar_on_a_terminal(env: dict[str, str], crm_dsn: str, tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    make_lead_file(3_000, seed=5).write(source)
    code, out, err = run(env, str(source), "--map", MAPPING, terminal=True)
    assert code == 0, err
    assert "reading    [" in err and "writing    [" in err and "100%" in err
    assert out.startswith("imported leads.csv")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{file}", "--map", "fone=Phone"), "--map: unknown field 'fone'"),
        (("{file}", "--map", "name=Name,phone=Telephone"), "no column 'Telephone'"),
        (("{missing}", "--map", "phone=Phone"), "no such file"),
        (("{file}", "--map", "phone=Phone", "--campaign", "nope"), "no campaign 'nope'"),
        (("{file}", "--map", "phone=Phone", "--report", "/no/such/dir/r.csv"), "does not exist"),
        (("{bad}", "--map", "phone=Phone"), "line 3 is not UTF-8"),
    ],
)
def test_bad_input_is_one_sentence_and_a_non_zero_exit(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("Name,Phone\nDana,2125550142\n")
    bad.write_bytes(b"Name,Phone\nDana,2125550142\nLee,\xff\xfe\n")
    paths = {"file": str(good), "missing": str(tmp_path / "missing.csv"), "bad": str(bad)}
    code, out, err = run(env, *(arg.format(**paths) for arg in args))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_database_down_is_one_sentence(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("Phone\n2125550142\n")
    code, _, err = run({**env, "DIALER_PG_DSN": "postgresql://postgres@127.0.0.1:1/x"}, str(good), "--map", "phone=Phone")
    assert code == 3 and "nothing was imported" in err and err.count("\n") == 1
