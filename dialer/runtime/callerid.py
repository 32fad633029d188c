"""Caller ID strings handed to Asterisk, which become SIP `From` headers and channel variables.

Names come from the CRM (a web form, an import): a CR or LF in one would add headers to the
agent's INVITE, a quote would end the display name early. Intake refuses control characters;
this is the second line, where text becomes signalling.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\<>]')
MAX_DISPLAY_NAME = 64


def display_name(text: str) -> str:
    """`text` made safe as a quoted SIP display name: no control characters, quotes,
    backslashes or angle brackets, whitespace folded, at most 64 characters."""
    return " ".join(_UNSAFE.sub(" ", text).split())[:MAX_DISPLAY_NAME]


def caller_id(name: str, number: str) -> str:
    """`"Name" <number>` for ARI's `callerId`."""
    return f'"{display_name(name)}" <{display_name(number)}>'
