"""The README's click-to-call example, run as written on a fresh database against the real stack
(Asterisk, PostgreSQL, Redis, a real softphone for the agent): the lines before `dialer serve &`
run in bash, then the dialer starts (in this process, with the gate's clock inside calling hours
and the API on a free port instead of 8080), then the lines after it run in bash."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm_bridge.store import CrmStore
from dialer.click_to_call.machine import CallTimeouts
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.conftest import ADMIN_DSN
from tests.controller.conftest import GATE_NOW, dialer_settings, mark_lists_fresh

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:8080"


def readme_block(marker: str) -> str:
    """The shell block that follows `<!-- readme-test: MARKER -->` in the README."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- readme-test: {re.escape(marker)} -->\s*```sh\n(.*?)```", text, re.S)
    assert found, f"no readme-test block {marker!r} in README.md"
    return found.group(1)


def _bash(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"README lines failed ({done.returncode}):\n{script}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(180)
async def test_the_readme_click_to_call_example_works_as_written_on_a_fresh_install(
    asterisk: AsteriskInstance, redis_url: str, redis_prefix: str, tmp_path: Path, softphone_factory: Any
) -> None:
    block = readme_block("click-to-call")
    before, serve, after = block.partition("dialer serve &")
    assert serve, "the README's example starts `dialer serve &`"
    after = after.split("\n", 1)[1]  # the rest of the `dialer serve &` line is its comment
    database = f"dialer_readme_{uuid.uuid4().hex[:8]}"
    pg_dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{database}"
    env = {**os.environ, "DIALER_CONFIG": "", "DIALER_PG_DSN": pg_dsn, "DIALER_REDIS_URL": redis_url,
           "DIALER_REDIS_PREFIX": redis_prefix, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    phone = softphone_factory("agent1001")
    try:
        # 1. Set-up, on a database that does not exist yet.
        await asyncio.to_thread(_bash, before, env)
        # 2. `dialer serve &`.
        settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
        async with dialer_services(settings, gate_clock=lambda: GATE_NOW, drain_seconds=5,
                                   timeouts=CallTimeouts(agent_ring=8.0, lead_ring=15.0)) as services:
            await mark_lists_fresh(services)
            async with TestClient(TestServer(services.app)) as client:
                url = str(client.make_url("")).rstrip("/")
                # 3. The API calls, as written, against this server.
                output = await asyncio.to_thread(_bash, after.replace(README_URL, url), env)
                answers = [json.loads(line) for line in output.replace("}{", "}\n{").splitlines() if line.strip()]
                accepted, calls, leads = answers
                assert accepted["status"] == "requested", accepted
                call_id = accepted["call_id"]
                assert [lead["first_name"] for lead in leads["leads"]] == ["Dana"]
                assert set(calls) == {"calls", "next"}  # the new call is listed once its row reached the CRM
                store: CrmStore = services.store
                async with asyncio.timeout(60):
                    while True:
                        await services.outbox.flush(10)
                        call = await store.get_call(call_id)
                        if call is not None and call.outcome is not None and call.recording_id is not None:
                            break
                        await asyncio.sleep(0.3)
                assert call.outcome.value == "answered" and call.agent_id == "ann"
                assert call.caller_id == "+12125550100" and call.lead_number == "+12125551106"
                assert call.bridged_at is not None
        assert phone is not None
    finally:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await connection.close()
