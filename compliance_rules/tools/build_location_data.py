"""Regenerate the offline location data shipped with the gate.

    .venv/bin/python -m compliance_rules.tools.build_location_data

Writes three files into `compliance_rules/data/` (`--prefixes-only`: the last one only):

* `zip_centroids.csv.gz`: `zip,state,lat,lon,listed_zone` for every US ZIP code, derived from the
  `zipcodes` package (a dev dependency only; the runtime reads the shipped file). The gate turns
  the coordinates into an IANA zone with timezonefinder at run time; `listed_zone` (the package's
  own zone) is used only when a centroid falls in the sea (timezonefinder answers `Etc/GMT...`).
* `npa_states.csv`: `npa,states` (states joined by `|`), derived from phonenumbers' offline
  geocoder by probing every NXX of every NPA, so an area code that the geocoder attributes to
  two states keeps both (the gate then applies both states' rules).
* `nanp_prefixes.json.gz`: what `compliance_rules.numbers.parse_number` says about every
  NPA-NXX (validity, dialability, geographic, zones, area-code states), as classes and runs, so
  a batch of a million numbers is classified with one numpy lookup (`compliance_rules.batch`).
  Every US number pattern in phonenumbers' metadata is decided by the first six digits, except
  the 5XX personal numbers of NPAs 523 and 524 (seven digits): those are marked `per_number`
  and parsed one by one. A test checks the table against `parse_number` on random numbers.

Both files carry their source versions in a leading `#` comment, which the gate reports in every
decision's `data_versions`.
"""

from __future__ import annotations

import csv
import gzip
import io
from importlib import metadata
from pathlib import Path

import phonenumbers
from phonenumbers import geocoder

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

US_STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Washington D.C.": "DC", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY",
    "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI",
    "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE",
    "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR",
    "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "Washington State": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
}
STATE_CODES = set(US_STATE_NAMES.values())


def _state_of(description: str) -> str | None:
    """`"Tallahassee, FL"` -> FL; `"Florida"` -> FL; anything else -> None."""
    if description in US_STATE_NAMES:
        return US_STATE_NAMES[description]
    _, _, tail = description.rpartition(", ")
    return tail if tail in STATE_CODES else None


def build_npa_states() -> dict[str, set[str]]:
    """Every US geographic NPA -> the states phonenumbers' geocoder names for its exchanges."""
    result: dict[str, set[str]] = {}
    for npa in range(200, 1000):
        states: set[str] = set()
        for nxx in range(200, 1000):
            number = phonenumbers.parse(f"+1{npa}{nxx}4567")
            if phonenumbers.region_code_for_number(number) != "US":
                break
            if not phonenumbers.is_valid_number(number):
                continue
            state = _state_of(geocoder.description_for_number(number, "en"))
            if state:
                states.add(state)
        if states:
            result[str(npa)] = states
    return result


def build_zip_rows() -> list[tuple[str, str, str, str, str]]:
    import zipcodes  # dev dependency: only this tool needs it

    rows = []
    for entry in zipcodes.list_all():  # type: ignore[no-untyped-call]
        if not entry["lat"] or not entry["long"]:
            continue
        rows.append((entry["zip_code"], entry["state"], entry["lat"], entry["long"], entry["timezone"] or ""))
    rows.sort()
    return rows


PER_NUMBER_NPAS = (523, 524)  # personal-number patterns that look at the 7th digit


def build_prefix_classes() -> dict[str, object]:
    """Classes of `parse_number` outcomes and, per NPA, runs of NXX sharing a class."""
    from compliance_rules.numbers import parse_number

    classes: dict[tuple[object, ...], int] = {("invalid", False, (), ()): 0}
    runs: list[tuple[int, int, int]] = []
    for npa in range(200, 1000):
        previous = None
        for nxx in range(1000):
            if npa in PER_NUMBER_NPAS:
                key: tuple[object, ...] = ("per_number", False, (), ())
            elif nxx < 200:
                key = ("invalid", False, (), ())  # no US pattern has an NXX starting 0 or 1
            else:
                info = parse_number.__wrapped__(f"+1{npa}{nxx:03d}4567")
                key = (info.problem.value if info.problem else "", info.geographic, info.zones, info.npa_states)
            class_id = classes.setdefault(key, len(classes))
            if class_id != previous:
                runs.append((npa, nxx, class_id))
                previous = class_id
    return {
        "source": f"phonenumbers {metadata.version('phonenumbers')}",
        "classes": [list(key) for key in sorted(classes, key=classes.__getitem__)],
        "runs": runs,
    }


def write_prefix_classes() -> int:
    import json

    data = build_prefix_classes()
    with gzip.GzipFile(DATA_DIR / "nanp_prefixes.json.gz", "wb", mtime=0) as handle:
        handle.write(json.dumps(data, separators=(",", ":")).encode())
    return len(data["runs"])  # type: ignore[arg-type]


def main() -> None:
    import sys

    DATA_DIR.mkdir(exist_ok=True)
    if "--prefixes-only" in sys.argv[1:]:
        print(f"wrote {write_prefix_classes()} NPA-NXX runs to {DATA_DIR}")
        return
    zip_rows = build_zip_rows()
    buffer = io.StringIO()
    buffer.write(f"# source: zipcodes {metadata.version('zipcodes')}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["zip", "state", "lat", "lon", "listed_zone"])
    writer.writerows(zip_rows)
    # mtime=0 keeps the file byte-identical across rebuilds of the same data.
    with gzip.GzipFile(DATA_DIR / "zip_centroids.csv.gz", "wb", mtime=0) as handle:
        handle.write(buffer.getvalue().encode())

    npa_states = build_npa_states()
    with (DATA_DIR / "npa_states.csv").open("w", newline="") as handle:
        handle.write(f"# source: phonenumbers {metadata.version('phonenumbers')} geocoder\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["npa", "states"])
        for npa in sorted(npa_states):
            writer.writerow([npa, "|".join(sorted(npa_states[npa]))])
    runs = write_prefix_classes()
    print(f"wrote {len(zip_rows)} ZIP centroids, {len(npa_states)} area codes and {runs} NPA-NXX runs to {DATA_DIR}")


if __name__ == "__main__":
    main()
