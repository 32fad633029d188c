"""How long a recording is kept, and whether it may be purged now. Pure: no IO, no clock.

The periods, and the rules that set them:
- Medicare Advantage (Part C) and Part D marketing, sales and enrollment calls: recorded in
  their entirety (42 CFR 422.2274(g)(2)(ii) and 423.2274(g)(2)(ii), as added by 87 FR 27704,
  May 9, 2022) and kept 10 years, the Medicare record-retention period (42 CFR 422.504(d) and
  423.505(d)) that flows down to agents and TPMOs through their plan contracts.
- Everything else telemarketed: the Telemarketing Sales Rule's record-keeping period, 5 years
  since the 2024 amendments (16 CFR 310.5(b); 89 FR 26760, April 16, 2024; compliance from
  October 15, 2024). No line of business may be configured below it.
- A line of business the dialer does not know (a click-to-call without a campaign, a campaign
  without a line set): the longest period, 10 years. Keeping a recording too long is fixed
  later by a purge; one deleted too early cannot be brought back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

TSR_RECORD_YEARS = 5
"""16 CFR 310.5(b) (as amended, 89 FR 26760): telemarketing records are kept five years."""
CMS_RECORD_YEARS = 10
"""42 CFR 422.504(d), 423.505(d): Medicare Advantage and Part D records are kept ten years."""


class LineOfBusiness(StrEnum):
    """`campaigns.line_of_business`, copied to each recording."""

    MEDICARE_ADVANTAGE = "medicare_advantage"
    MEDICARE_PART_D = "medicare_part_d"
    MEDICARE_SUPPLEMENT = "medicare_supplement"
    ACA = "aca"
    LIFE = "life"
    FINAL_EXPENSE = "final_expense"
    PROPERTY_CASUALTY = "property_casualty"
    OTHER = "other"


class RetentionError(ValueError):
    """A retention setting the rules do not allow."""


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # February 29th into a year without one: keep to March 1st, never shorter
        return moment.replace(year=moment.year + years, month=3, day=1)


@dataclass(frozen=True)
class RetentionPolicy:
    """Years kept per line of business; lines not listed keep `default_years`."""

    years: Mapping[LineOfBusiness, int] = field(default_factory=lambda: {
        LineOfBusiness.MEDICARE_ADVANTAGE: CMS_RECORD_YEARS,
        LineOfBusiness.MEDICARE_PART_D: CMS_RECORD_YEARS,
    })
    default_years: int = TSR_RECORD_YEARS
    unknown_years: int = CMS_RECORD_YEARS

    def __post_init__(self) -> None:
        periods: dict[str, int] = {**{str(line): years for line, years in self.years.items()},
                                   "the default": self.default_years, "an unknown line": self.unknown_years}
        for line, years in periods.items():
            if years < TSR_RECORD_YEARS:
                raise RetentionError(
                    f"{line} keeps recordings {years} years, below the Telemarketing Sales Rule's "
                    f"{TSR_RECORD_YEARS} (16 CFR 310.5(b))")
        for line in (LineOfBusiness.MEDICARE_ADVANTAGE, LineOfBusiness.MEDICARE_PART_D):
            if self.years.get(line, self.default_years) < CMS_RECORD_YEARS:
                raise RetentionError(f"{line} recordings are kept {CMS_RECORD_YEARS} years (42 CFR 422.504(d), 423.505(d))")

    @classmethod
    def from_settings(cls, overrides: Mapping[str, int], default_years: int = TSR_RECORD_YEARS) -> RetentionPolicy:
        """From configuration (`{"life": 7}`); unknown line names are refused."""
        base = dict(cls().years)
        for name, years in overrides.items():
            try:
                base[LineOfBusiness(name)] = int(years)
            except ValueError:
                raise RetentionError(f"unknown line of business {name!r}") from None
        return cls(base, default_years)

    def years_for(self, line: str | None) -> int:
        if line is None:
            return self.unknown_years
        try:
            return self.years.get(LineOfBusiness(line), self.default_years)
        except ValueError:
            return self.unknown_years

    def retain_until(self, recorded_at: datetime, line: str | None) -> datetime:
        return _add_years(recorded_at, self.years_for(line))


DEFAULT_POLICY = RetentionPolicy()


class PurgeRefusal(StrEnum):
    """Why a recording is not purged."""

    LEGAL_HOLD = "legal_hold"
    RETENTION_UNMET = "retention_unmet"
    NO_RETENTION_DATE = "no_retention_date"
    ALREADY_PURGED = "already_purged"


@dataclass(frozen=True)
class PurgeCheck:
    refusal: PurgeRefusal | None
    reason: str

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def purge_check(*, recording_id: str, retain_until: datetime | None, legal_hold: bool, held_by: str | None,
                hold_reason: str | None, purged_at: datetime | None, now: datetime) -> PurgeCheck:
    """May this recording be destroyed at `now`? A hold always wins; so does an unmet date."""
    if purged_at is not None:
        return PurgeCheck(PurgeRefusal.ALREADY_PURGED, f"{recording_id} was purged at {purged_at.isoformat()}")
    if legal_hold:
        return PurgeCheck(PurgeRefusal.LEGAL_HOLD,
                          f"{recording_id} is under legal hold (set by {held_by or 'unknown'}: {hold_reason or 'no reason'})")
    if retain_until is None:
        # Rows from before retention dates were kept: never purged until one is set.
        return PurgeCheck(PurgeRefusal.NO_RETENTION_DATE, f"{recording_id} has no retention date")
    if retain_until > now:
        return PurgeCheck(PurgeRefusal.RETENTION_UNMET,
                          f"{recording_id} must be kept until {retain_until.isoformat()}")
    return PurgeCheck(None, f"{recording_id} was due for deletion on {retain_until.isoformat()}")
