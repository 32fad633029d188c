"""Retention periods by line of business, and when a purge is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recordings.retention import DEFAULT_POLICY, PurgeRefusal, RetentionError, RetentionPolicy, purge_check

RECORDED = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(("line", "years"), [
    ("medicare_advantage", 10), ("medicare_part_d", 10),  # 42 CFR 422.504(d), 423.505(d)
    ("life", 5), ("aca", 5), ("other", 5),  # 16 CFR 310.5(b)
    (None, 10), ("a line nobody configured", 10),  # unknown: the longest
])
def test_each_line_of_business_keeps_its_period(line: str | None, years: int) -> None:
    assert DEFAULT_POLICY.retain_until(RECORDED, line) == RECORDED.replace(year=2026 + years)


def test_a_leap_day_recording_is_kept_to_march_first_never_less() -> None:
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert DEFAULT_POLICY.retain_until(leap, "life") == datetime(2033, 3, 1, 12, tzinfo=UTC)


def test_configuration_may_lengthen_but_never_go_below_the_rules() -> None:
    assert RetentionPolicy.from_settings({"life": 7}).years_for("life") == 7
    with pytest.raises(RetentionError, match=r"310\.5"):
        RetentionPolicy.from_settings({"life": 3})
    with pytest.raises(RetentionError, match=r"422\.504"):
        RetentionPolicy.from_settings({"medicare_advantage": 7})
    with pytest.raises(RetentionError, match="unknown line"):
        RetentionPolicy.from_settings({"boats": 7})
    with pytest.raises(RetentionError):
        RetentionPolicy.from_settings({}, default_years=2)


def _check(**changes: object) -> PurgeRefusal | None:
    row: dict[str, object] = {"recording_id": "r1", "retain_until": RECORDED, "legal_hold": False, "held_by": None,
                              "hold_reason": None, "purged_at": None, "now": RECORDED + timedelta(seconds=1)}
    row.update(changes)
    return purge_check(**row).refusal  # type: ignore[arg-type]


def test_a_purge_waits_for_the_date_and_always_yields_to_a_hold() -> None:
    assert _check() is None
    assert _check(now=RECORDED - timedelta(seconds=1)) is PurgeRefusal.RETENTION_UNMET
    assert _check(legal_hold=True, held_by="counsel", hold_reason="Smith v. Agency") is PurgeRefusal.LEGAL_HOLD
    assert _check(retain_until=None) is PurgeRefusal.NO_RETENTION_DATE
    assert _check(purged_at=RECORDED) is PurgeRefusal.ALREADY_PURGED
    held = purge_check(recording_id="r1", retain_until=RECORDED, legal_hold=True, held_by="counsel",
                       hold_reason="Smith v. Agency", purged_at=None, now=RECORDED + timedelta(days=1))
    assert "counsel" in held.reason and "Smith v. Agency" in held.reason
