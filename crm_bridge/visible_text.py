"""Invisible formatting characters: refused in names and other one-line texts wherever they
enter the CRM (the HTTP API's text types in `dialer.api.schema`, the CSV lead import's name,
address and source columns in `crm_bridge.lead_mapping`).

Shown on a supervisor's or an agent's screen they change what is read without being seen: a
right-to-left override (U+202E) prints what follows backwards, so "Ann", U+202E, "nosnhoJ" shows
as "AnnJohnson" ("Trojan Source", CVE-2021-42574); a zero-width space makes two names that look
the same compare different. Refused, not stripped: the client
learns its text was not what it looked like, and nothing stored differs from what was sent.
"""

from __future__ import annotations

import re

# The bidirectional embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069), the
# zero-width space, non-joiner and joiner and the direction marks (U+200B-U+200F), and U+FEFF (a
# byte order mark inside text is a zero-width no-break space). A file's leading BOM is not
# text: the CSV import drops it before reading the header.
INVISIBLE_FORMATTING = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# The API's error code for it (`error` of the 422), and what a refusal says.
INVISIBLE_CHARACTERS = "invisible_characters"


def invisible_character(text: str) -> str | None:
    """The first invisible formatting character of `text`, written `U+202E`, or None."""
    found = INVISIBLE_FORMATTING.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def invisible_message(character: str) -> str:
    """Why a text was refused, naming the character (the same words in the API and the import)."""
    return (f"holds an invisible formatting character ({character}: a direction override, zero-width "
            "character or byte order mark) that would change how it reads on screen")
