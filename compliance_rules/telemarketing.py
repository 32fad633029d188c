"""The numbers of the telemarketing rules that calls themselves must obey (as opposed to the
gate's may-we-call rules): one constant per rule, cited here, imported everywhere else."""

from __future__ import annotations

from typing import Final

# 47 CFR 64.1200(a)(6) and 16 CFR 310.4(b)(4)(ii): an unanswered call must ring at least
# 15 seconds (or four rings) before it is disconnected.
MIN_RING_SECONDS: Final = 15

# 47 CFR 64.1200(a)(7)(i) and 16 CFR 310.4(b)(4)(i): a person who answers must be connected to
# a sales representative within 2 seconds of their completed greeting, or the call is
# abandoned (and the recorded message must start within those 2 seconds).
CONNECT_LIMIT_SECONDS: Final = 2.0
