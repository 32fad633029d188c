"""What Asterisk's hang-up causes mean for a lead leg that was never answered. Pure.

The authoritative outcome of a dial is its `ChannelDestroyed` cause (Q.850). Asterisk maps SIP
responses onto these causes (486/600 -> 17, 480 -> 19, 404/485/604 -> 1, 503 -> 34,
403/603 -> 21), and a dial timeout hangs up with 19 without a NOANSWER `Dial` event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from crm_bridge.records import CallOutcome

UNANSWERED_CAUSES: Final[dict[int, CallOutcome]] = {
    17: CallOutcome.BUSY,  # user busy
    18: CallOutcome.NO_ANSWER,  # no user responding
    19: CallOutcome.NO_ANSWER,  # no answer from user (user alerted)
    1: CallOutcome.UNALLOCATED,  # unallocated number
    3: CallOutcome.UNALLOCATED,  # no route to destination
    22: CallOutcome.UNALLOCATED,  # number changed
    28: CallOutcome.UNALLOCATED,  # invalid number format
    34: CallOutcome.CONGESTION,  # no circuit/channel available
    38: CallOutcome.CONGESTION,  # network out of order
    41: CallOutcome.CONGESTION,  # temporary failure
    42: CallOutcome.CONGESTION,  # switching equipment congestion
    21: CallOutcome.REJECTED,  # call rejected
}


def sip_code(tech_cause: int | None) -> int | None:
    """The SIP response code in a `ChannelDestroyed.tech_cause`, when it is one."""
    return tech_cause if tech_cause and 100 <= tech_cause <= 699 else None


def utc(epoch_seconds: float) -> datetime:
    """An epoch-seconds `now` as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)
