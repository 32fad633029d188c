"""How long a text is on the air: GSM-7 or UCS-2, and how many segments. Pure.

A text travels in 140-octet SMS segments (3GPP TS 23.040). When every character is in the GSM
7-bit default alphabet or its extension table (3GPP TS 23.038), a lone segment holds 160
septets and each part of a longer text 153 (the user data header takes 7); an extension
character (`{ } [ ] ~ \\ | ^ €` and form feed) costs two septets and is never split across
parts. Any other character makes the whole text UCS-2: 70 UTF-16 units in a lone segment, 67
in each part, and a character outside the Basic Multilingual Plane (most emoji) is a surrogate
pair that is never split either. Providers charge and rate-limit per segment.

Written here rather than taken from a package: the tables are two short strings, and what we
need (a count that matches how carriers split, surrogate pairs and escapes kept whole) is a
dozen lines over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# The longest text the dialer sends: 10 segments of GSM-7 (1,530) and common providers' 1,600
# character ceiling; a longer body is refused, not cut.
MAX_SEGMENTS = 10
MAX_CHARACTERS = 1600


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class TextSize:
    encoding: Encoding
    characters: int  # code points, as people count them
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    def to_json(self) -> dict[str, object]:
        return {"encoding": self.encoding.value, "characters": self.characters, "units": self.units,
                "segments": self.segments}


def encoding_of(text: str) -> Encoding:
    return Encoding.GSM7 if all(c in _BASIC or c in _EXTENSION for c in text) else Encoding.UCS2


def _pack(costs: list[int], single: int, part: int) -> int:
    """Segments for characters of these unit costs: one if they fit a lone segment, else parts
    filled greedily without splitting a character."""
    if sum(costs) <= single:
        return 1 if costs else 0
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments


def measure(text: str) -> TextSize:
    """The encoding, length and segment count of `text` as a carrier sends it."""
    encoding = encoding_of(text)
    if encoding is Encoding.GSM7:
        costs = [2 if c in _EXTENSION else 1 for c in text]
        return TextSize(encoding, len(text), sum(costs), _pack(costs, GSM7_SINGLE, GSM7_PART))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return TextSize(encoding, len(text), sum(costs), _pack(costs, UCS2_SINGLE, UCS2_PART))
