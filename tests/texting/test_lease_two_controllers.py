"""Two controllers (`dialer serve` with the lease) texting through an HTTP messaging provider:
the active one is stopped (SIGSTOP) past its lease while a text waits for its sender's slot;
the standby takes over; the stopped one, woken, must not hand that text to its provider (the
provider is not behind the ARI client's fence). Each controller has its own provider, so what
the first one sent after losing the lease is seen apart from what the second sends.

What this does and does not show: measured with `TextingRuntime.fence` left unset, it passes
too (3 runs of 3): on waking, the text's runner first asks the gate again (it waited past
`recheck_after`), and that Redis round trip lets the lease loop see the loss and end the
process first. So it checks the outcome end to end; the fence itself, the last check for the
window before the process ends, is tested at the sending step (`test_lease_fence.py`)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from compliance_rules.store import DncStore
from crm_bridge.outbox import Outbox
from crm_bridge.store import TokenRole
from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.ports import free_local_port
from tests.campaign.conftest import GATE_NOW
from tests.cluster.controller import Controller
from tests.controller.conftest import STATE_LISTS, dialer_settings
from tests.support.child_dialer import api_headers, child_environment
from tests.texting.conftest import PEWC, FakeProvider, phone_number
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_a_controller_stopped_past_its_lease_sends_no_text_to_its_provider_when_it_wakes(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = dialer_settings(asterisk, pg_dsn, redis_url, redis_prefix, tmp_path)
    env = {**child_environment(settings, tmp_path / "state", tmp_path / "recordings", free_local_port(),
                               tmp_path / "cache"),
           "DIALER_CONTROLLER_LEASE": "true", "DIALER_TEXTING_RATE": "0.2"}  # a slot every 5 s per sender
    suffix = uuid.uuid4().hex[:8]
    sender = f"+1888555{uuid.uuid4().int % 10000:04d}"
    campaign_id, phones = f"camp-{suffix}", [phone_number("556") for _ in range(2)]
    lead_ids = [f"lead-{suffix}-{n}" for n in range(2)]
    async with FakeProvider() as provider_a, FakeProvider() as provider_b:
        first = Controller("a", {**env, **provider_a.settings()}, tmp_path)
        second = Controller("b", {**env, **provider_b.settings()}, tmp_path)
        stopped = False
        try:
            # The lists as loaded on the controllers' gate day (as the in-process tests mark them).
            redis = aioredis.from_url(redis_url)
            try:
                dnc = DncStore(redis, redis_prefix)
                for name in ("federal", *(f"state:{state}" for state in STATE_LISTS)):
                    await dnc.set_list_date(name, GATE_NOW.date())
            finally:
                await redis.aclose()
            await first.start()
            second.spawn()  # on standby
            async with Outbox(tmp_path / "seed", pg_dsn, name="seed") as seed:
                await seed.put("campaign_upsert", {
                    "campaign_id": campaign_id, "name": "Lease", "caller_id": sender, "dial_mode": "preview",
                    "seller_name": "Acme Insurance", "dnc_callback_number": sender})
                for lead_id, phone in zip(lead_ids, phones, strict=True):
                    await seed.put("lead_upsert", {
                        "lead_id": lead_id, "first_name": "Dana", "phones": [phone], "state": "NY", "zip": "10001",
                        "consents": [{**PEWC[0], "consent_id": f"pewc-{uuid.uuid4().hex[:8]}", "phone": phone}]})
                assert await seed.flush(10)
            headers = await api_headers(pg_dsn, TokenRole.CRM, "lease-texts")
            message_ids: list[str] = []
            async with aiohttp.ClientSession() as session:
                for lead_id in lead_ids:
                    async with session.post(f"{first.url}/v1/messages", headers=headers, json={
                            "lead_id": lead_id, "campaign_id": campaign_id, "body": "Your quote is ready."}) as response:
                        assert response.status == 202, await response.text()
                        message_ids.append((await response.json())["message_id"])
            await until(lambda: len(provider_a.requests) == 1, 10, 0.02)
            assert first.process is not None
            # Stopped half a second before the second text's slot, so that on waking its timer
            # most likely comes before the lease renewal's (renewed every 2 s).
            await asyncio.sleep(4.5)
            os.kill(first.process.pid, signal.SIGSTOP)
            stopped = True

            async def second_active() -> bool:
                try:
                    async with aiohttp.ClientSession() as session, session.get(f"{second.url}/v1/health") as answer:
                        return answer.status == 200
                except aiohttp.ClientError:
                    return False

            await until(second_active, 60, 0.2)  # the lease ran out (6 s) and the standby took it
            await asyncio.sleep(1.0)
            os.kill(first.process.pid, signal.SIGCONT)  # its text's slot is long past
            stopped = False
            exit_code: Any = await asyncio.to_thread(first.process.wait, 20)
            await asyncio.sleep(2.0)
            assert provider_a.requests == [phones[0]], (provider_a.requests, first.log_tail())
            assert exit_code == 75, first.log_tail()
            assert phones[0] not in provider_b.requests  # the first text is never sent twice
        finally:
            if stopped and first.process is not None:
                os.kill(first.process.pid, signal.SIGCONT)
            if first.process is not None:
                first.kill()
            second.stop()
