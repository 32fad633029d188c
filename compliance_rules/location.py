"""ZIP code -> state and time zone, from shipped ZIP centroids and timezonefinder (offline).

`zip_centroids.csv.gz` is derived from the `zipcodes` package (see
`compliance_rules.tools.build_location_data`); timezonefinder turns a centroid into an IANA zone.
A state alone (no ZIP) maps to every zone any of its ZIP codes lies in.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from zoneinfo import ZoneInfo, available_timezones

from timezonefinder import TimezoneFinder

from compliance_rules.ruleset import DATA_DIR

_ZIP = re.compile(r"(\d{5})(?:-?\d{4})?")


@dataclass(frozen=True)
class ZipLocation:
    zip_code: str
    state: str
    zone: str | None
    # Another zone the ZIP code may keep: the source lists a zone whose clock differs from the
    # centroid's (22 ZIP codes on a zone line, e.g. Phenix City, AL: Central by law, Eastern in
    # practice). Both apply (the stricter window wins).
    also: tuple[str, ...] = ()


@cache
def centroids() -> tuple[str, dict[str, tuple[str, float, float, str]]]:
    """The ZIP data's source and, per ZIP code, its state, latitude, longitude and zone."""
    raw = gzip.decompress((DATA_DIR / "zip_centroids.csv.gz").read_bytes()).decode()
    first, _, rest = raw.partition("\n")
    source = first.removeprefix("# source: ").strip()
    rows = csv.reader(io.StringIO(rest))
    next(rows)
    return source, {
        zip_code: (state, float(lat), float(lon), listed) for zip_code, state, lat, lon, listed in rows
    }


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _finder() -> TimezoneFinder:
    return TimezoneFinder()


@cache
def data_version() -> str:
    source, _ = centroids()
    return f"{source}; timezonefinder {metadata.version('timezonefinder')}"


@cache
def locate_zip(zip_code: str) -> ZipLocation | None:
    """The state and zone of a 5-digit ZIP code (ZIP+4 accepted: 12345-6789 or 123456789), or
    None when unknown or malformed. A 6-digit or otherwise garbled code is not cut to its first
    five digits: that would be a guess at where the lead is."""
    match = _ZIP.fullmatch(zip_code.strip())
    if match is None:
        return None
    five = match.group(1)
    entry = centroids()[1].get(five)
    if entry is None:
        return None
    state, lat, lon, listed_zone = entry
    zone = _finder().timezone_at(lat=lat, lng=lon)
    if zone is None or zone.startswith("Etc/"):
        # The centroid lies in the sea (coastal and island ZIPs): use the zone the source lists,
        # when it is a real zone (the source has at least one that is not: "Napakiak").
        zone = listed_zone if listed_zone in _known_zones() else None
    also: tuple[str, ...] = ()
    if zone is not None and listed_zone in _known_zones() and _clocks_differ(zone, listed_zone):
        also = (listed_zone,)
    return ZipLocation(five, state, zone, also)


_SAMPLE_INSTANTS = (datetime(2026, 1, 15, 12, tzinfo=UTC), datetime(2026, 7, 15, 12, tzinfo=UTC))


def _clocks_differ(one: str, other: str) -> bool:
    """Whether two zones show different times in winter or summer (not just different names)."""
    return any(at.astimezone(ZoneInfo(one)).utcoffset() != at.astimezone(ZoneInfo(other)).utcoffset()
               for at in _SAMPLE_INSTANTS)


@cache
def zones_for_state(state: str) -> tuple[str, ...]:
    """Every zone that any ZIP code of `state` lies in (empty for an unknown state)."""
    zones = {
        zone
        for zip_code, (zip_state, _, _, _) in centroids()[1].items()
        if zip_state == state
        for location in (locate_zip(zip_code),)
        if location is not None and location.zone
        for zone in (location.zone, *location.also)
    }
    return tuple(sorted(zones))


@cache
def zone_fits_states(zone: str, states: tuple[str, ...]) -> bool:
    """Whether `zone` keeps the clock of some zone of `states` (a ZIP code of theirs lies in one).
    False flags numbering data that names a zone none of the area code's states keeps (907-581,
    Unalaska, AK, maps to Pacific/Honolulu; rules.md section 4)."""
    return any(not _clocks_differ(zone, other) for state in states for other in zones_for_state(state))
