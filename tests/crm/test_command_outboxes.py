"""What a `dialer` command kept in its own outbox while PostgreSQL did not answer reaches the
CRM without anyone running another command: `dialer serve` delivers it, exactly once, and a
command that finds `dialer serve` delivering waits for its turn instead of failing.

Before: `dialer dnc opt-out` during an outage printed "the CRM record waits locally until
PostgreSQL answers", and it waited until someone happened to run `dialer dnc opt-out`,
`dialer check` or `dialer recording open` again; `dialer db outbox` did not show it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import pytest

from crm_bridge.outbox import Outbox, deliver_left_over
from dialer.commands import CLI_OUTBOX
from dialer.commands.serve import deliver_command_outboxes
from dialer.provision.ports import free_local_port
from dialer.settings import from_environment
from dialer.tasks import owned_task

pytestmark = [pytest.mark.integration]


def _phone() -> str:
    # 605 (South Dakota): no other test dials there; opted-out numbers are shared by the run.
    return f"+1605555{random.randrange(10_000):04d}"


async def _opt_out_rows(dsn: str, phone: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM opt_outs WHERE phone = $1", phone))
    finally:
        await conn.close()


def _command_env(monkeypatch: pytest.MonkeyPatch, state_dir: Path, pg_dsn: str, redis_url: str,
                 redis_prefix: str) -> None:
    for name, value in {"DIALER_CONFIG": "", "DIALER_STATE_DIR": str(state_dir), "DIALER_PG_DSN": pg_dsn,
                        "DIALER_REDIS_URL": redis_url, "DIALER_REDIS_PREFIX": redis_prefix}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.timeout(60)
async def test_an_opt_out_kept_by_the_command_while_postgresql_was_down_is_delivered_by_serve_once(
        tmp_path: Path, crm_dsn: str, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    state_dir = tmp_path / "state"
    phone = _phone()
    _command_env(monkeypatch, state_dir, f"postgresql://postgres@127.0.0.1:{free_local_port()}/crm", redis_url,
                 redis_prefix)
    assert await asyncio.to_thread(main, ["dnc", "opt-out", phone]) == 0
    assert "waits locally until PostgreSQL answers" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["db", "outbox"]) == 0
    assert f"outbox-{CLI_OUTBOX}.sqlite3: 1 pending" in capsys.readouterr().out

    # PostgreSQL is back; no command is run again, `dialer serve` is.
    monkeypatch.setenv("DIALER_PG_DSN", crm_dsn)
    settings = from_environment()
    async with owned_task(deliver_command_outboxes(settings, every=0.1), "command-outboxes"):
        for _ in range(200):
            if await _opt_out_rows(crm_dsn, phone):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # several more rounds: nothing is sent twice
    assert await _opt_out_rows(crm_dsn, phone) == 1
    assert await asyncio.to_thread(main, ["db", "outbox"]) == 0
    assert f"outbox-{CLI_OUTBOX}.sqlite3: 0 pending" in capsys.readouterr().out
    # A later command on the same outbox sends nothing again either.
    assert await deliver_left_over(state_dir, crm_dsn, CLI_OUTBOX, 2.0) is None
    async with Outbox(state_dir, crm_dsn, name=CLI_OUTBOX) as outbox:
        assert await outbox.flush(2.0)
    assert await _opt_out_rows(crm_dsn, phone) == 1


@pytest.mark.timeout(60)
async def test_a_command_waits_while_serve_delivers_its_outbox_instead_of_failing(
        tmp_path: Path, crm_dsn: str, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    state_dir = tmp_path / "state"
    phone = _phone()
    _command_env(monkeypatch, state_dir, crm_dsn, redis_url, redis_prefix)
    holder = Outbox(state_dir, crm_dsn, name=CLI_OUTBOX)  # as `dialer serve` holds it while delivering
    await holder.start()
    command = asyncio.create_task(asyncio.to_thread(main, ["dnc", "opt-out", phone]), name="opt-out-command")
    try:
        await asyncio.sleep(1.0)
        assert not command.done()  # was: a traceback (OutboxError: another process is using the outbox)
    finally:
        await holder.close()
    assert await command == 0
    assert capsys.readouterr().out.endswith(f"{phone} opted out\n")
    assert await _opt_out_rows(crm_dsn, phone) == 1


@pytest.mark.timeout(60)
async def test_an_opt_out_whose_redis_does_not_answer_says_the_crm_has_it(
        tmp_path: Path, crm_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    phone = _phone()
    _command_env(monkeypatch, tmp_path / "state", crm_dsn, f"redis://127.0.0.1:{free_local_port()}/0", "qa:")
    assert await asyncio.to_thread(main, ["dnc", "opt-out", phone]) == 1
    err = capsys.readouterr().err
    # Was "cannot use Redis at ...": as if nothing had been recorded, while the CRM row was.
    assert "dialer: the opt-out is recorded for the CRM, but Redis at redis://127.0.0.1:" in err, err
    assert await _opt_out_rows(crm_dsn, phone) == 1
