"""State holiday dates, computed per year from named rules (pure).

Holiday sets in the rule data name holidays by key (`mlk_day`, `good_friday`, ...); this module
turns a key and a year into a date, and applies the observed-day shift a state uses for holidays
that fall on a weekend. The gate treats both the actual date and the observed date as holidays
(conservative: the statutes do not say which of the two the ban follows).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from enum import StrEnum
from functools import cache


class ObservedRule(StrEnum):
    """How a fixed-date holiday on a weekend is observed."""

    NONE = "none"
    SAT_TO_FRI_SUN_TO_MON = "sat_to_fri_sun_to_mon"  # 5 U.S.C. 6103(b); Ala. Code 1-3-8(a)


class UnknownHolidayError(ValueError):
    """A holiday key in the rule data has no date rule here."""


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) `weekday` (Mon=0) of a month; n = -1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        offset = (weekday - first.weekday()) % 7
        return first + timedelta(days=offset + 7 * (n - 1))
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter, anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


MON, TUE, THU = 0, 1, 3

# Fixed-date holidays get the observed-day shift; floating ones always fall on a weekday.
_FIXED: dict[str, tuple[int, int]] = {
    "new_years_day": (1, 1),
    "battle_of_new_orleans_jan8": (1, 8),
    "ri_independence_day_may4": (5, 4),
    "flag_day_jun14": (6, 14),
    "juneteenth": (6, 19),
    "independence_day": (7, 4),
    "pioneer_day_jul24": (7, 24),
    "veterans_day": (11, 11),
    "rosa_parks_day_dec1": (12, 1),
    "christmas": (12, 25),
}

_FLOATING: dict[str, Callable[[int], date]] = {
    "mlk_day": lambda y: nth_weekday(y, 1, MON, 3),
    "presidents_day": lambda y: nth_weekday(y, 2, MON, 3),
    "confederate_memorial_day_4th_mon_apr": lambda y: nth_weekday(y, 4, MON, 4),
    "memorial_day": lambda y: nth_weekday(y, 5, MON, -1),
    "jefferson_davis_birthday_1st_mon_jun": lambda y: nth_weekday(y, 6, MON, 1),
    "victory_day_2nd_mon_aug": lambda y: nth_weekday(y, 8, MON, 2),
    "labor_day": lambda y: nth_weekday(y, 9, MON, 1),
    "columbus_day": lambda y: nth_weekday(y, 10, MON, 2),
    # General election day: the Tuesday after the first Monday of November. Applied every year
    # (PA and LA hold municipal elections in odd years too).
    "election_day_general": lambda y: nth_weekday(y, 11, MON, 1) + timedelta(days=1),
    "thanksgiving": lambda y: nth_weekday(y, 11, THU, 4),
    "day_after_thanksgiving": lambda y: nth_weekday(y, 11, THU, 4) + timedelta(days=1),
    "good_friday": lambda y: easter_sunday(y) - timedelta(days=2),
    "mardi_gras": lambda y: easter_sunday(y) - timedelta(days=47),
}

KNOWN_HOLIDAYS: frozenset[str] = frozenset(_FIXED) | frozenset(_FLOATING)


def holiday_dates(key: str, year: int, observed: ObservedRule) -> tuple[date, ...]:
    """Every date on which holiday `key` bans calls in `year` (actual day and observed day)."""
    if key in _FLOATING:
        return (_FLOATING[key](year),)
    if key not in _FIXED:
        raise UnknownHolidayError(f"no date rule for holiday {key!r}")
    month, day = _FIXED[key]
    actual = date(year, month, day)
    dates = [actual]
    if observed is ObservedRule.SAT_TO_FRI_SUN_TO_MON:
        if actual.weekday() == 5:
            dates.append(actual - timedelta(days=1))
        elif actual.weekday() == 6:
            dates.append(actual + timedelta(days=1))
    return tuple(dates)


@cache
def holidays_in_year(keys: tuple[str, ...], year: int, observed: ObservedRule) -> dict[date, str]:
    """Map of banned date -> holiday key for a holiday set in one year.

    New Year's Day of the next year observed on Dec 31 is included in this year's map.
    """
    banned: dict[date, str] = {}
    for key in keys:
        for candidate_year in (year, year + 1):
            for day in holiday_dates(key, candidate_year, observed):
                if day.year == year:
                    banned.setdefault(day, key)
    return banned


def holiday_on(keys: Iterable[str], day: date, observed: ObservedRule) -> str | None:
    """The holiday key banning calls on `day`, or None."""
    return holidays_in_year(tuple(keys), day.year, observed).get(day)
