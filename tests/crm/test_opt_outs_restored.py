"""Opt-outs kept in an outbox while PostgreSQL was down are put back on the Redis opt-out list
at start, with those PostgreSQL has, when Redis lost the list meanwhile (restarted without
persistence, or the process killed between the outbox write and the list).

Before: the start rebuilt the list from PostgreSQL's `opt_outs` rows only. An opt-out still in
an outbox was found in neither, and once the outbox delivered it, nothing put it back on the
list until the next restart: the gate let the opted-out number be called and texted."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from compliance_rules.numbers import parse_number
from compliance_rules.rules import OPTOUT
from compliance_rules.store import DncStore
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import Outbox, pending_records
from crm_bridge.store import CrmStore
from dialer.commands import CLI_OUTBOX
from dialer.runtime.reconcile import restore_opt_outs
from tests.crm import factories

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"


def _phone() -> str:
    # 605 (South Dakota): no other test dials there; opted-out numbers are shared by the run.
    return f"+1605556{random.randrange(10_000):04d}"


async def _kept_while_postgresql_is_down(state_dir: Path, name: str, phone: str) -> None:
    outbox = Outbox(state_dir, UNREACHABLE, name=name, connect_timeout=0.5)
    await outbox.start()
    await outbox.put(RecordKind.OPT_OUT, factories.opt_out(phone))
    await outbox.close(timeout=0.1)


async def test_opt_outs_still_in_an_outbox_are_back_on_the_list_at_start(
        tmp_path: Path, crm_dsn: str, redis_client: aioredis.Redis, redis_prefix: str) -> None:
    by_the_dialer, by_a_command = _phone(), _phone()
    await _kept_while_postgresql_is_down(tmp_path, "crm", by_the_dialer)
    await _kept_while_postgresql_is_down(tmp_path, CLI_OUTBOX, by_a_command)
    assert [r["phone"] for r in pending_records(tmp_path, RecordKind.OPT_OUT, CLI_OUTBOX)] == [by_a_command]
    dnc = DncStore(redis_client, redis_prefix)  # an empty Redis: it lost the list

    store = await CrmStore.open(crm_dsn)
    try:
        await restore_opt_outs(store, dnc, state_dir=tmp_path, outboxes=("crm", CLI_OUTBOX))
    finally:
        await store.close()
    for phone in (by_the_dialer, by_a_command):
        assert await dnc.contains(OPTOUT, parse_number(phone)), phone
