"""Same-call trunk failover, one path for every kind of outbound call (campaign, click-to-call).

A dial the carrier refuses before the phone rings (503, congestion, a SIP timeout; the pure
decision is `dialer.provision.trunks.retry_step`) is the same call tried again on the next trunk
in preference order, on a new lead channel (`{call}-lead-2`, ...). A call's machine asks for
it with `RerouteLead`; its runtime answers with `next_trunk`, which gives the failed trunk's
channel back (marking it down for a while), takes the next trunk with a free channel, renews
the gate's decision when it is too old, and routes the new leg's channel id to the call before
anything is originated. The answer is `Rerouted` or `RerouteFailed`, fed back to the machine.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the machines import the messages; only the runtime runs `next_trunk`
    from dialer.ari.dispatch import Route
    from dialer.provision.trunks import TrunkRouter


@dataclass(frozen=True)
class RerouteLead:
    """The dial failed on its trunk before reaching the called phone (503, a timeout): find the
    next trunk (not one of `tried`), reuse or renew the gate's decision (`ask_gate`), and give a
    new channel id for the retry; answered with `Rerouted` or `RerouteFailed`."""

    call_id: str
    phone: str
    attempt: int  # 2 for the first retry
    tried: tuple[str, ...]
    ask_gate: bool
    failed_cause: int | None
    failed_sip_code: int | None


@dataclass(frozen=True)
class Rerouted:
    """The next trunk for a retry of the same call (`RerouteLead`): the new leg's channel id is
    already routed to this call; `decision_id` and `decided_at` are the gate's decision it goes
    out under (the first one reused, or a new one)."""

    channel_id: str
    endpoint: str
    trunk: str
    decision_id: str
    decided_at: float


@dataclass(frozen=True)
class RerouteFailed:
    """No retry on another trunk: none left with a free channel, the gate said no, or the call
    is no longer wanted (its campaign stopped)."""

    reason: str


def retry_channel(call_id: str, attempt: int) -> str:
    """The lead leg's channel id of a call's `attempt`-th try (the first is `{call}-lead`)."""
    return f"{call_id}-lead" if attempt <= 1 else f"{call_id}-lead-{attempt}"


# The gate asked again for a retry: (decision id, when) when it allows, else the reason it did not.
AskGate = Callable[[], Awaitable[tuple[str, float] | str]]


async def next_trunk(router: TrunkRouter | None, step: RerouteLead, *, route: Route | None, decision_id: str,
                     decided_at: float, ask_gate: AskGate, log: Any, unwanted: str | None = None,
                     ) -> Rerouted | RerouteFailed:
    """The same call on the next trunk, for `RerouteLead` (see the module's docstring).

    `decision_id`/`decided_at` are the decision the failed try went out under, reused unless
    `step.ask_gate`; `unwanted` is why the call must not be retried at all (None: it may);
    `route` is the call's dispatcher registration (None: the call is already over)."""
    if router is None:
        return RerouteFailed("no other trunk")
    failed = router.release(step.call_id)
    if failed is not None:
        router.call_ended(failed, step.failed_cause or 0, step.failed_sip_code, time.time())
    if unwanted is not None:
        return RerouteFailed(unwanted)
    if step.ask_gate:
        renewed = await ask_gate()
        if isinstance(renewed, str):
            return RerouteFailed(f"the gate blocked the retry ({renewed})")
        decision_id, decided_at = renewed
    endpoint = router.route(time.time(), key=step.call_id, exclude=step.tried)
    if endpoint is None:
        return RerouteFailed("no other trunk has a free channel now")
    if route is None:
        router.release(step.call_id)
        return RerouteFailed("the call is over")
    channel_id = retry_channel(step.call_id, step.attempt)
    route.add_channel(channel_id)
    log.warning("trunk_failover", failed_trunk=failed, cause=step.failed_cause, sip_code=step.failed_sip_code,
                next_trunk=endpoint, attempt=step.attempt, gate_asked_again=step.ask_gate)
    return Rerouted(channel_id, f"PJSIP/{step.phone}@{endpoint}", endpoint, decision_id, decided_at)
