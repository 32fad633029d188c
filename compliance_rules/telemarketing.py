"""The numbers of the telemarketing rules that calls themselves must obey (as opposed to the
gate's may-we-call rules): one constant per rule, cited here, imported everywhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# 47 CFR 64.1200(a)(6) and 16 CFR 310.4(b)(4)(ii): an unanswered call must ring at least
# 15 seconds (or four rings) before it is disconnected.
MIN_RING_SECONDS: Final = 15

# 47 CFR 64.1200(a)(7)(i) and 16 CFR 310.4(b)(4)(i): a person who answers must be connected to
# a sales representative within 2 seconds of their completed greeting, or the call is
# abandoned (and the recorded message must start within those 2 seconds).
CONNECT_LIMIT_SECONDS: Final = 2.0

# 47 CFR 64.1200(a)(7)(i) and 16 CFR 310.4(b)(4)(i): at most 3 % of the calls answered by a live
# person may be abandoned, measured per campaign over a 30-day period.
ABANDON_LIMIT: Final = 0.03
ABANDON_WINDOW_DAYS: Final = 30

# Which answers the rate counts as answered by a live person (its denominator), from the AMD
# verdict the call ran through. HUMAN, and NOTSURE: a person may be there, so the dialer treats
# the call as a person's (connected or given the safe-harbor message within 2 s) and counts it.
# Not counted: MACHINE (the rule's denominator excludes machines); HANGUP, and no verdict at all
# (the line hung up or failed before AMD decided): nobody completed a greeting, so the call
# cannot be abandoned, and counting it would only dilute the rate. Calls the dialer did not pace
# (received calls, click-to-call dials an agent placed by hand) are neither.
LIVE_ANSWER_AMD_RESULTS: Final = frozenset({"HUMAN", "NOTSURE"})


def is_live_answer(amd_result: str | None, *, inbound: bool = False) -> bool:
    """Whether a call counts as answered by a live person in the abandonment rate."""
    return not inbound and amd_result in LIVE_ANSWER_AMD_RESULTS


@dataclass(frozen=True, slots=True)
class AbandonTally:
    """A campaign's abandonment over a period: calls answered by a live person
    (`is_live_answer`) and those abandoned (not connected within `CONNECT_LIMIT_SECONDS` of
    the greeting)."""

    live_answers: int = 0
    abandoned: int = 0

    @property
    def rate(self) -> float:
        return self.abandoned / self.live_answers if self.live_answers else 0.0
