"""Phone number handling: E.164, dialability, area-code location (pure lookups over shipped data).

phonenumbers' time-zone mapper reflects the numbering plan (rate centre), not the subscriber, and
resolves some area codes per exchange (850-222 Eastern, 850-785 Central); the result is treated
as a set of zones the lead may be in (rules.md section 4).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import metadata

import phonenumbers
from phonenumbers import PhoneNumberType, phonenumberutil, timezone
from phonenumbers.phonemetadata import PhoneMetadata

from compliance_rules.ruleset import DATA_DIR

# Types we can place a call or text to. Premium-rate (900), shared-cost, pager, UAN and voicemail
# access numbers are never dialed by the engine.
_DIALABLE_TYPES = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)
_GEOGRAPHIC_TYPES = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_UNKNOWN_ZONE = "Etc/Unknown"

# The US territories in the North American Numbering Plan, by area code -> their phonenumbers
# region (also their two-letter state code). They are US numbers for the engine: the TCPA's
# "State" includes the territories (47 U.S.C. 153(52)) and the National Do Not Call Registry
# takes their numbers like any other (47 CFR 64.1200(c)(2)); their calling window is their own
# zone's (phonenumbers' mapper: Atlantic for PR and USVI, Chamorro UTC+10 for Guam and the
# Northern Marianas, Samoa UTC-11 for American Samoa). The other NANP countries (Canada, the
# Caribbean nations) stay "not US".
US_TERRITORY_NPAS: dict[int, str] = {787: "PR", 939: "PR", 340: "VI", 671: "GU", 670: "MP", 684: "AS"}


def _metadata(region: str) -> PhoneMetadata:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:  # a broken phonenumbers install: fail at import, not per call
        raise RuntimeError(f"phonenumbers has no metadata for region {region}")
    return metadata


_REGION_METADATA = {region: _metadata(region) for region in ("US", *US_TERRITORY_NPAS.values())}


class NumberProblem(StrEnum):
    UNPARSABLE = "unparsable"
    INVALID = "invalid"
    NOT_US = "not_us"
    NOT_DIALABLE = "not_dialable"


@dataclass(frozen=True)
class NumberInfo:
    """What the gate knows about a number from the number alone."""

    raw: str
    e164: str | None
    problem: NumberProblem | None = None
    detail: str = ""
    npa: int = 0
    local: int = 0  # the 7-digit NXX-XXXX part: the offset into the NPA's DNC bitmap
    geographic: bool = False
    zones: tuple[str, ...] = ()  # only for geographic numbers
    npa_states: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def national(self) -> str:
        """The 10-digit national number ("" when invalid)."""
        return f"{self.npa:03d}{self.local:07d}" if self.e164 else ""


@cache
def npa_states() -> dict[int, tuple[str, ...]]:
    """Area code -> states, from the shipped table derived from phonenumbers' geocoder."""
    text = (DATA_DIR / "npa_states.csv").read_text(encoding="utf-8")
    rows = csv.reader(line for line in io.StringIO(text) if not line.startswith("#"))
    next(rows)
    return {int(npa): tuple(states.split("|")) for npa, states in rows}


@cache
def data_version() -> str:
    return f"phonenumbers {metadata.version('phonenumbers')}"


def e164_spelling(raw: str) -> str | None:
    """`raw` written as E.164 when it reads as a phone number at all, valid or not (None when it
    does not): one number written two ways, "(555) 201-0001" and "+15552010001", has one spelling.
    For comparing requests, not for deciding whether a number may be dialed (`parse_number`)."""
    try:
        number = phonenumbers.parse(raw.strip(), "US")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@cache
def parse_number(raw: str) -> NumberInfo:
    """Normalise `raw` (any US format, or E.164) and describe it; never raises."""
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException as error:
        # Its text without the library's "(1) " error-type prefix: it reaches people's screens.
        text = str(getattr(error, "_msg", error)).rstrip(".")
        return NumberInfo(raw, None, NumberProblem.UNPARSABLE, text[:1].lower() + text[1:])
    # Validity and type against one region's metadata (the US's, or the territory's its area
    # code names): the generic calls try every NANP region in turn and cost ~15x more (measured
    # by scripts/bench_gate.py).
    national = phonenumberutil.national_significant_number(number)
    territory = US_TERRITORY_NPAS.get(int(national[:3])) if number.country_code == 1 and len(national) == 10 else None
    region = territory or "US"
    if not phonenumbers.is_valid_number_for_region(number, region):
        if phonenumbers.is_valid_number(number):
            other = phonenumbers.region_code_for_number(number)
            return NumberInfo(raw, None, NumberProblem.NOT_US, f"not a US number (region {other})")
        return NumberInfo(raw, None, NumberProblem.INVALID, "not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    number_type = phonenumberutil._number_type_helper(national, _REGION_METADATA[region])
    npa, local = int(national[:3]), int(national[3:])
    if number_type not in _DIALABLE_TYPES:
        return NumberInfo(
            raw, e164, NumberProblem.NOT_DIALABLE, f"not a dialable number type ({PhoneNumberType.to_string(number_type)})", npa, local
        )
    geographic = number_type in _GEOGRAPHIC_TYPES
    zones: tuple[str, ...] = ()
    if geographic:
        zones = tuple(z for z in timezone.time_zones_for_geographical_number(number) if z != _UNKNOWN_ZONE)
    return NumberInfo(
        raw,
        e164,
        None,
        "",
        npa,
        local,
        geographic=geographic and bool(zones),
        zones=zones,
        npa_states=((territory,) if territory else npa_states().get(npa, ())) if geographic else (),
    )
