"""The wall clock stepped back an hour (NTP correcting a fast clock, a VM restored from a
snapshot) between two texts of one sender number: the second still goes at once, on the real
stack. Before, the sender's rate-limit slot was kept on the wall clock, so it lay an hour in the
"future": the text waited its whole `max_wait`, then expired unsent (and so did every text of
that sender for the hour)."""

from __future__ import annotations

import time

import pytest

from dialer.runtime.runner import drive
from tests.texting.conftest import TextingDialer, phone_number

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STEP_BACK_SECONDS = 3600.0


async def test_a_wall_clock_stepped_back_an_hour_does_not_hold_the_next_text(
        texting_dialer: TextingDialer, monkeypatch: pytest.MonkeyPatch) -> None:
    dialer = texting_dialer
    campaign_id = await dialer.texting_campaign("+18885550161")
    first, second = phone_number("561"), phone_number("562")
    first_lead, second_lead = await dialer.consenting_lead(first), await dialer.consenting_lead(second)

    status, body = await dialer.post_text({"lead_id": first_lead, "campaign_id": campaign_id,
                                           "body": "Your quote is ready."})
    assert status == 202, body
    await dialer.phone_receives(first)

    real_time = time.time

    def stepped_back() -> float:
        return real_time() - STEP_BACK_SECONDS

    # The whole process sees the step: `time.time()` wherever it is called, and the machines'
    # runner, whose default clock is the function itself (bound when it was defined).
    monkeypatch.setattr(time, "time", stepped_back)
    monkeypatch.setattr(drive, "__defaults__", (stepped_back,))
    status, body = await dialer.post_text({"lead_id": second_lead, "campaign_id": campaign_id,
                                           "body": "Your quote is ready."})
    assert status == 202, body
    started = time.monotonic()
    await dialer.phone_receives(second, within=10.0)
    assert time.monotonic() - started < 5.0
    message = await dialer.message(body["message_id"], until=lambda m: m.status != "queued")
    assert message.status in {"sent", "delivered"}, message
