"""Texting when PostgreSQL is down: a texted STOP still opts the number out at once (Redis),
is confirmed, and every row reaches PostgreSQL once it is back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from compliance_rules.numbers import parse_number
from compliance_rules.rules import OPTOUT
from crm_bridge.store import TokenRole
from dialer.provision.asterisk import AsteriskInstance
from dialer.serve import dialer_services
from tests.controller.conftest import dialer_settings, mark_lists_fresh
from tests.support.fault_proxy import FaultProxy
from tests.texting.conftest import Clock, TextingDialer, phone_number
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def texting_behind_proxy(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[TextingDialer, FaultProxy]]:
    parts = urlsplit(pg_dsn)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        settings = dialer_settings(asterisk, proxy.rewrite_dsn(pg_dsn), redis_url, redis_prefix, tmp_path)
        clock = Clock()
        async with dialer_services(settings, gate_clock=clock, drain_seconds=5,
                                   texting_overrides={"agency_name": "Acme Insurance"}) as services:
            await mark_lists_fresh(services)
            crm = (await services.store.issue_token(TokenRole.CRM)).secret
            async with TestClient(TestServer(services.app)) as client:
                yield TextingDialer(services, client, asterisk, pg_dsn, crm, uuid.uuid4().hex[:6], clock), proxy


async def test_a_texted_stop_while_postgresql_is_down_is_honoured_and_kept(
    texting_behind_proxy: tuple[TextingDialer, FaultProxy],
) -> None:
    dialer, proxy = texting_behind_proxy
    phone = phone_number("566")
    lead_id = await dialer.consenting_lead(phone)
    proxy.down()
    await dialer.text_from_phone(phone, "stop", "+18885550100")
    number = parse_number(phone)

    async def in_redis() -> bool:
        return bool(await dialer.services.dnc.redis.sismember(dialer.services.dnc.list_key(OPTOUT, number.npa),
                                                              str(number.local)))
    await until(in_redis, 5, interval=0.05)
    # The confirmation goes too: the gate's audit and the rows wait in the outbox.
    assert (await dialer.phone_receives(phone))[0].startswith("Acme Insurance: you are opted out")
    assert dialer.services.outbox.stats().pending > 0
    proxy.restore()
    assert await dialer.services.outbox.flush(30)
    opt_outs = await dialer.fetch("SELECT source, lead_id FROM opt_outs WHERE phone = $1", phone)
    assert [dict(row) for row in opt_outs] == [{"source": "sms_keyword", "lead_id": None}]
    rows = await dialer.fetch("SELECT direction, kind, status FROM messages WHERE from_number = $1 OR to_number = $1 "
                              "ORDER BY created_at", phone)
    assert [tuple(row) for row in rows] == [("inbound", "opt_out", "received"),
                                            ("outbound", "opt_out_confirmation", "sent")]
    # No second lead was made for a number the CRM could not be asked about.
    leads = await dialer.fetch("SELECT lead_id FROM leads WHERE $1 = ANY(phones)", phone)
    assert [row["lead_id"] for row in leads] == [lead_id]
