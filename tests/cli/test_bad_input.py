"""Bad input an operator gives the `dialer` command, and Ctrl-C: one sentence on stderr, a
non-zero exit, and nothing half-done left behind (a DNC list dated by a file that held no
number, staged copies of a list left in Redis, an unaudited evidence packet)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis

from compliance_rules.importer import ParseStats
from compliance_rules.store import DncStore


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    monkeypatch.setenv("DIALER_CONFIG", "")
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def _one_sentence(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("dialer: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _dnc_meta(redis_url: str, prefix: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.hgetall(f"{prefix}dnc:meta")  # type: ignore[return-value]
    finally:
        client.close()


def _ctrl_c_delivered() -> None:
    """In the child before it runs: SIGINT's default action back. A suite started in the background
    by a non-interactive shell (`.ci/run &`) inherits SIGINT ignored, and Python then keeps it
    ignored: the command would never see the Ctrl-C these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _staged_keys(redis_url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=f"{prefix}dnc:*:import:*", count=1000))
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_a_dnc_file_without_one_number_is_refused_and_the_list_keeps_its_date(
        tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    _env(monkeypatch, DIALER_REDIS_URL=redis_url, DIALER_REDIS_PREFIX=redis_prefix)
    registry = tmp_path / "federal.txt"
    registry.write_text("2125550100\n4155550101\n")
    assert main(["dnc", "import", str(registry), "--list", "federal", "--date", "2026-11-01", "--quiet"]) == 0
    capsys.readouterr()
    before = _dnc_meta(redis_url, redis_prefix)
    # Was: exit 0, "federal ... ok, 0 numbers", dated today: the gate took a wrong file for a fresh copy.
    wrong = tmp_path / "leads-export.csv"
    wrong.write_bytes(b"name,phone\nAnn,n/a\n\xff\xfe binary\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    for path, why in ((wrong, "none of its 3 lines is a 10-digit US number"), (empty, "it holds no numbers")):
        assert main(["dnc", "import", str(path), "--list", "federal", "--quiet"]) == 2
        out, err = capsys.readouterr()
        sentence = _one_sentence(err)
        assert out == "" and f"is not a copy of the federal list: {why}" in sentence, sentence
        assert sentence.endswith("the list was left as it was.")
    assert _dnc_meta(redis_url, redis_prefix) == before
    assert _staged_keys(redis_url, redis_prefix) == []


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_list_date_the_gate_would_judge_stale_at_once_is_refused(
        tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The gate trusts a copy dated ahead only as an early edition (dated on a publication day
    of its list, at most 31 days ahead): the federal and litigator lists have none. Before, any
    date up to 31 days ahead was taken, and the list was then stale from its import."""
    from dialer.cli import main

    _env(monkeypatch, DIALER_REDIS_URL=redis_url, DIALER_REDIS_PREFIX=redis_prefix)
    copy = tmp_path / "list.txt"
    copy.write_text("2125550100\n4155550101\n")
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    next_first = (today.replace(day=28) + timedelta(days=4)).replace(day=1)  # Louisiana publishes monthly, on the 1st
    not_an_edition = tomorrow if tomorrow.day != 1 else tomorrow + timedelta(days=1)
    for name in ("federal", "litigator"):
        assert main(["dnc", "import", str(copy), "--list", name, "--date", tomorrow.isoformat(), "--quiet"]) == 2
        out, err = capsys.readouterr()
        sentence = _one_sentence(err)
        assert out == "" and sentence == f"dialer: --date {tomorrow} is ahead of today ({today}, UTC) and a {name} " \
            "list has no early editions, so the gate would treat the copy as stale: give the day it was downloaded.", \
            sentence
    assert main(["dnc", "import", str(copy), "--list", "state:LA", "--date", not_an_edition.isoformat(), "--quiet"]) == 2
    sentence = _one_sentence(capsys.readouterr().err)
    assert "is not a publication day of state:LA (01-01, 02-01," in sentence, sentence
    assert _dnc_meta(redis_url, redis_prefix) == {}, "a refused date wrote nothing"
    # An early edition on its day, a list the gate does not date, and today itself are taken.
    assert main(["dnc", "import", str(copy), "--list", "state:LA", "--date", next_first.isoformat(), "--quiet"]) == 0
    assert main(["dnc", "import", str(copy), "--list", "internal", "--date", tomorrow.isoformat(), "--quiet"]) == 0
    assert main(["dnc", "import", str(copy), "--list", "federal", "--date", today.isoformat(), "--quiet"]) == 0
    capsys.readouterr()


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_an_import_that_fails_midway_leaves_the_list_and_no_staged_copy(
        redis_url: str, redis_prefix: str, redis_client: object) -> None:
    import redis.asyncio as aioredis

    assert isinstance(redis_client, aioredis.Redis)
    store = DncStore(redis_client, redis_prefix)
    await store.import_full("federal", [np.array([2125550100, 4155550101], dtype=np.int64)], date(2026, 11, 1))
    before = await store.versions()

    def chunks_then_interrupted() -> object:
        yield np.array([2125550199, 6465550100, 7185550100], dtype=np.int64)
        yield np.array([3055550100 + i for i in range(100)], dtype=np.int64)
        raise KeyboardInterrupt  # Ctrl-C while the file is still being read

    for list_name in ("federal", "internal"):  # bitmaps and sets
        with pytest.raises(KeyboardInterrupt):
            await store.import_full(list_name, chunks_then_interrupted(), date(2026, 11, 30), ParseStats())  # type: ignore[arg-type]
    assert await store.versions() == before
    assert _staged_keys(redis_url, redis_prefix) == []


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_ctrl_c_in_a_dnc_import_says_so_and_leaves_nothing_staged(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    # Several 8 MB read blocks: a set list (internal) stages each block as it is read, so Ctrl-C
    # comes while the copy is half staged (was: every staged key left in Redis for good, and
    # exit 130 in silence).
    rng = np.random.default_rng(7)
    numbers = rng.integers(201, 990, 2_500_000) * 10**7 + rng.integers(2_000_000, 10_000_000, 2_500_000)
    registry = tmp_path / "internal.txt"
    registry.write_text("\n".join(map(str, numbers.tolist())))
    # A Redis database of its own (the suite's holds every test's DNC lists): a SCAN for the
    # staged keys is then a single short round trip, so the poll sees the staging as it starts.
    own_url = redis_url.rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(own_url)
    try:
        for attempt in range(3):
            # Each try under its own prefix: a try whose import finished first leaves its list.
            prefix = f"{redis_prefix}try{attempt}:"
            env = {**os.environ, "DIALER_CONFIG": "", "DIALER_REDIS_URL": own_url, "DIALER_REDIS_PREFIX": prefix}
            process = subprocess.Popen([sys.executable, "-m", "dialer", "dnc", "import", str(registry), "--list",
                                        "internal", "--quiet"], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_delivered)
            try:
                deadline = time.monotonic() + 30
                while not any(True for _ in client.scan_iter(match=f"{prefix}dnc:*:import:*", count=1000)):
                    if process.poll() is not None:
                        break
                    assert time.monotonic() < deadline, "the import never staged a copy"
                    time.sleep(0.005)
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=30)
            finally:
                process.kill()
                process.communicate()  # reaped, its pipes closed
            if process.returncode != 0:
                break
            # The whole copy was staged and renamed between the poll that saw it and the signal
            # (a loaded machine): a Ctrl-C after the end is not the case under test; try again.
        assert process.returncode == 130, (out, err)
        assert _one_sentence(err) == "dialer: interrupted (Ctrl-C) before the command finished."
        assert _staged_keys(own_url, prefix) == []
        assert b"internal" not in _dnc_meta(own_url, prefix)
    finally:
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))  # every try's keys go
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_a_check_with_a_state_or_an_audit_log_it_cannot_use_is_refused_not_decided(
        tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    _env(monkeypatch, DIALER_REDIS_URL=redis_url, DIALER_REDIS_PREFIX=redis_prefix,
         DIALER_STATE_DIR=str(tmp_path / "state"))
    cases = [
        # Was: decided (exit 0/1) as if ZZ were a state.
        (["--state", "ZZ"], "dialer: --state 'ZZ' is not a US state's two-letter code (e.g. NY)"),
        # Was: "BLOCKED - gate_unavailable" on stdout, for a typo in a path.
        (["--audit-log", str(tmp_path / "missing" / "decisions.jsonl")],
         f"dialer: --audit-log {tmp_path / 'missing' / 'decisions.jsonl'}: give a file in an existing directory"),
        (["--audit-log", str(tmp_path)], f"dialer: --audit-log {tmp_path}: give a file in an existing directory"),
    ]
    for words, sentence in cases:
        assert main(["check", "2125550100", *words]) == 2, words
        out, err = capsys.readouterr()
        assert out == "" and err == f"{sentence}\n", (words, err)


@pytest.mark.timeout(30)
def test_a_directory_given_for_a_file_is_named_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    _env(monkeypatch)
    assert main(["leads", "import", str(tmp_path), "--map", "phone=Phone"]) == 2
    assert capsys.readouterr().err == f"dialer: cannot read {tmp_path}: it is a directory, not a CSV file\n"
    assert main(["evidence", "verify", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"dialer: {tmp_path} is a directory, not a packet: give the packet's FILE.zip\n"


@pytest.mark.timeout(10)
async def test_owned_tasks_are_awaited_after_cancel_and_their_failures_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    from structlog.testing import capture_logs

    from dialer.tasks import owned_task

    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    async with owned_task(forever(), "controller-lease") as task:
        await asyncio.sleep(0)
    assert task.done() and task.cancelled() and stopped.is_set()  # cancelled AND awaited

    async def fails() -> None:
        raise RuntimeError("carrier check broke")

    with capture_logs() as logs:
        async with owned_task(fails(), "startup-checks") as task:
            await asyncio.sleep(0.01)
    assert task.done()
    assert [(entry["event"], entry["task"]) for entry in logs] == [("task_failed", "startup-checks")]


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_the_changes_of_an_unknown_id_say_so(pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    _env(monkeypatch, DIALER_PG_DSN=pg_dsn)
    assert main(["db", "migrate"]) == 0
    capsys.readouterr()
    # Was: nothing at all and exit 0, the same as an entity with no changes.
    assert main(["changes", "list", "no-such-list-qa"]) == 1
    assert capsys.readouterr() == ("", "dialer: no recorded changes of list 'no-such-list-qa': check the id "
                                       "('dialer lists list').\n")


SCENARIO = Path(__file__).resolve().parents[2] / "scripts" / "scenarios" / "small_team5.yaml"


def _children(pid: int) -> list[int]:
    """The processes `pid` started (Linux: /proc/PID/task/*/children)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in children.read_text().split()]
    return found


@pytest.mark.timeout(60)
def test_ctrl_c_stops_a_simulation_on_several_workers_at_once(tmp_path: Path) -> None:
    # The terminal's Ctrl-C reaches the whole process group. Was: the command went on until
    # every replication already handed to a worker was done (minutes), then stopped silently.
    process = subprocess.Popen(
        [sys.executable, "-m", "dialer", "simulate", "--scenario", str(SCENARIO), "--policy", "predictive",
         "--replications", "4", "--workers", "2"],
        env={**os.environ, "DIALER_CONFIG": ""}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=_ctrl_c_delivered)
    try:
        # Ctrl-C once both workers are simulating (one replication takes about a minute here), not
        # while a loaded machine is still importing or spawning them: a fixed wait was too short.
        deadline = time.monotonic() + 30
        while len(_children(process.pid)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.05)
        time.sleep(1.0)
        interrupted = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=20)
        stopped_in = time.monotonic() - interrupted
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()  # reaped, its pipes closed
    assert process.returncode == 130 and out == "", (out, err)
    assert err == "dialer: interrupted (Ctrl-C) before the command finished.\n"  # no worker's traceback
    assert stopped_in < 5.0


@pytest.mark.timeout(30)
def test_a_plot_that_cannot_be_written_is_refused_before_the_simulation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    pytest.importorskip("matplotlib")
    _env(monkeypatch)
    started = time.monotonic()
    assert main(["simulate", "--scenario", str(SCENARIO), "--policy", "predictive",
                 "--plot", str(tmp_path / "missing" / "charts.png")]) == 2
    assert capsys.readouterr().err == (f"dialer: cannot write plot {tmp_path / 'missing' / 'charts.png'}: "
                                       "give a PNG file in an existing directory\n")
    assert time.monotonic() - started < 5.0  # was: said after the whole simulation


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_numbers_and_paths_that_were_tracebacks_are_one_sentence(
        tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from crm_bridge.audit_keys import AuditSigningKey
    from dialer.cli import main

    keys = tmp_path / "audit-keys"
    AuditSigningKey.load_or_create(keys, chain_signed=False)
    _env(monkeypatch, DIALER_PG_DSN=pg_dsn, DIALER_AUDIT_KEYS_DIR=str(keys),
         DIALER_RECORDINGS_DIR=str(tmp_path / "recordings"), DIALER_RECORDING_KEYS_DIR=str(tmp_path / "keys"))
    missing = tmp_path / "missing" / "audit.pem"
    cases = [
        (["audit", "key", "--out", str(missing)],  # was FileNotFoundError
         f"dialer: cannot write the public key to {missing} (No such file or directory): give a file in an "
         "existing directory"),
        (["recording", "purge", "--limit", "-1"], "dialer: --limit must be at least 1, not -1"),  # was asyncpg's
        (["recording", "purge", "--now", "soon"],
         "dialer: --now 'soon' is not an ISO-8601 time such as 2036-01-01T00:00Z"),  # was ValueError
        (["simulate", "--scenario", str(SCENARIO), "--policy", "predictive", "--seed", "-1"],
         "dialer: --seed must be 0 or more, not -1"),  # was numpy's ValueError
        (["config", "check", "--timeout", "nan"], "dialer: --timeout must be a number of seconds above 0, not nan"),
        (["serve", "--drain-seconds", "-5"], "dialer: --drain-seconds must be a number of seconds, 0 or more, not -5.0"),
        (["config", "certificate", "--out-dir", str(SCENARIO)],  # was NotADirectoryError
         f"dialer: --out-dir {SCENARIO} is a file: give a directory"),
    ]
    for words, sentence in cases:
        assert main(words) == 2, words
        out, err = capsys.readouterr()
        assert out == "" and err == f"{sentence}\n", (words, err)


@pytest.mark.timeout(30)
def test_a_url_that_is_not_the_dialer_api_is_one_sentence(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import http.server
    import threading

    from dialer.cli import main

    class HtmlOnly(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>Bad Gateway</html>")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlOnly)
    threading.Thread(target=server.serve_forever, name="html-only", daemon=True).start()
    try:
        _env(monkeypatch, DIALER_API_TOKEN="qa-token")
        url = f"http://127.0.0.1:{server.server_address[1]}"
        # Was a JSONDecodeError traceback (a proxy's error page, another program on the port).
        assert main(["campaign", "status", "c/1", "--url", url]) == 1
        assert capsys.readouterr().err == (
            f"dialer: {url} answered GET /v1/campaigns/c%2F1 with 502 and no JSON: is it the dialer API (--url, "
            "DIALER_HTTP_HOST, DIALER_HTTP_PORT)?\n")
    finally:
        server.shutdown()
        server.server_close()
