"""The times a callback may be set for: exactly where the gate's calling windows (federal, the
campaign's, the lead's states' hours, no-call holidays) allow a call, pure and exhaustive over a
state with all of them (Rhode Island: Mon-Fri 9-18, Sat 10-17, no Sundays, no holidays)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from compliance_rules.model import ContactRequest, ReasonCode
from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import callable_times, locate, window_reasons
from tests.compliance.helpers import BOOK

NEW_YORK = ZoneInfo("America/New_York")
RI_LEAD = locate(ContactRequest(phone="+14012740123", zip_code="02903", state="RI"))
POLICY = CampaignPolicy()


def day_times(day: str, location: object = RI_LEAD, policy: CampaignPolicy = POLICY) -> list[str]:
    start = datetime.combine(datetime.fromisoformat(day).date(), time(0), NEW_YORK)
    found = callable_times(location, policy, BOOK, start, start + timedelta(days=1), timedelta(minutes=30))  # type: ignore[arg-type]
    return [f"{at.astimezone(NEW_YORK):%H:%M}" for at in found]


def test_a_weekday_offers_the_states_hours_less_the_launch_margin() -> None:
    times = day_times("2026-12-07")  # a Monday
    assert times[0] == "09:00" and times[-1] == "17:30" and len(times) == 18


def test_saturday_hours_sundays_and_holidays() -> None:
    assert day_times("2026-12-05") == [f"{h:02d}:{m:02d}" for h in range(10, 17) for m in (0, 30)]  # Saturday
    assert day_times("2026-12-06") == []  # Sunday
    assert day_times("2026-12-25") == []  # Christmas, a federal holiday Rhode Island keeps


def test_the_campaigns_own_window_narrows_it() -> None:
    narrow = CampaignPolicy(window=tuple([((time(11, 0), time(13, 0)),)] * 7))
    assert day_times("2026-12-07", policy=narrow) == ["11:00", "11:30", "12:00", "12:30"]


def test_a_time_outside_names_the_rule_and_one_inside_has_no_reason() -> None:
    evening = datetime(2026, 12, 7, 19, 0, tzinfo=NEW_YORK)
    (reason,) = window_reasons(RI_LEAD, POLICY, BOOK, evening)
    assert reason.code is ReasonCode.OUTSIDE_CALLING_WINDOW and "RI" in reason.message
    assert window_reasons(RI_LEAD, POLICY, BOOK, datetime(2026, 12, 7, 10, 0, tzinfo=NEW_YORK)) == []
    christmas = window_reasons(RI_LEAD, POLICY, BOOK, datetime(2026, 12, 25, 10, 0, tzinfo=NEW_YORK))
    assert [r.code for r in christmas] == [ReasonCode.STATE_HOLIDAY]


def test_an_unknown_location_allows_no_time_and_a_naive_time_is_a_mistake() -> None:
    nowhere = locate(ContactRequest(phone="+18005550100"))
    assert day_times("2026-12-07", location=nowhere) == []
    assert window_reasons(nowhere, POLICY, BOOK, datetime(2026, 12, 7, 15, 0, tzinfo=NEW_YORK))
    with pytest.raises(ValueError, match="timezone-aware"):
        window_reasons(RI_LEAD, POLICY, BOOK, datetime(2026, 12, 7, 15, 0))
    with pytest.raises(ValueError, match="positive"):
        callable_times(RI_LEAD, POLICY, BOOK, datetime(2026, 12, 7, tzinfo=NEW_YORK),
                       datetime(2026, 12, 8, tzinfo=NEW_YORK), timedelta(0))
