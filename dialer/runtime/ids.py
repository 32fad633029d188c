"""Every id the runtime makes and every Redis key it owns, in one place.

Channels and bridges are named after their owner (`<owner>-<role>`, e.g. `call-<hex>-agent`,
`cmp-<hex>-bridge`, `ags-<hex>-hold`, `mon-<hex>-snoop-2`; a Local channel's second half adds
`;2`), so after a restart or a reconnect each kind of call recognises its own objects in
`GET /channels` and `GET /bridges` by prefix, and knows which owner they belonged to.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from functools import cache


class Prefix(StrEnum):
    """The prefix of each kind of id."""

    CLICK_TO_CALL = "call-"
    CAMPAIGN_CALL = "cmp-"
    AGENT_SESSION = "ags-"
    MONITOR = "mon-"
    LEAD = "lead-"
    DISPOSITION = "dsp_"
    OPT_OUT = "opt_"
    TEXT = "msg-"
    TEXT_RECEIPT = "rcp_"
    TEXT_TEMPLATE = "tpl_"
    OPT_IN = "opi_"
    CONSENT = "cns_"


# How many hex digits of a uuid4 each owner id carries (agent sessions and monitors have short
# ids: they appear in every channel name of a long session).
_LENGTHS = {Prefix.AGENT_SESSION: 16, Prefix.MONITOR: 16}


def new_id(prefix: Prefix) -> str:
    """A fresh id of this kind (`call-3f2a...`)."""
    return f"{prefix.value}{uuid.uuid4().hex[: _LENGTHS.get(prefix, 32)]}"


@cache
def _owner_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^({re.escape(prefix)}[0-9a-f]{{8,32}})(?:-[a-z0-9-]+)?(?:;[0-9]+)?$")


def owner_of(object_id: str, prefix: Prefix) -> str | None:
    """The owner id of one of our channels or bridges (`cmp-<hex>` for `cmp-<hex>-lead;2`), or
    None when the object is not named by an owner of this kind."""
    match = _owner_pattern(prefix.value).match(object_id)
    return match.group(1) if match else None


def agent_states_key(redis_prefix: str) -> str:
    """The Redis hash of logged-in agents' states (agent id -> JSON snapshot), read back by a
    restarted controller to take their legs back."""
    return f"{redis_prefix}agents"


def running_campaigns_key(redis_prefix: str) -> str:
    """The Redis hash of running campaigns (campaign id -> 1), kept with a controller lease so the
    controller taking over starts them again."""
    return f"{redis_prefix}campaigns:running"


def text_confirmation_key(redis_prefix: str, phone: str) -> str:
    """Set (NX) when a number's revocation was confirmed by text: at most one confirmation
    (47 CFR 64.1200(a)(12)); deleted when the number re-subscribes."""
    return f"{redis_prefix}texting:confirmed:{phone}"


def text_help_key(redis_prefix: str, phone: str) -> str:
    """Set (NX, with an expiry) when HELP was answered: two automatic responders never loop."""
    return f"{redis_prefix}texting:help:{phone}"
