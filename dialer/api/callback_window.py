"""When may a callback be set for a call's lead? The gate's own calling-window rules (federal,
the campaign's window, each state's hours, no-call holidays and declared days, in every zone the
lead may be in: `compliance_rules.rules.window_reasons`), so an agent cannot schedule a callback
the gate will block. Used by the console's callback picker (`GET /v1/calls/{id}/callback-times`)
and by the disposition route, which refuses a callback outside them. The rules are the gate's
loaded rulebook, handed in through `ApiDependencies.rulebook` (one copy per process)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from compliance_rules.policy import CampaignPolicy
from compliance_rules.rules import Location, callable_times, locate, window_reasons
from compliance_rules.ruleset import RuleBook
from crm_bridge.store import Call
from dialer.api.http import ApiDependencies, ApiError
from dialer.runtime.gate import contact_request, policy_for_campaign

SLOT = dt.timedelta(minutes=30)
LEAD_TIME = dt.timedelta(minutes=5)  # a callback starts at least this far ahead


class CallbackRules:
    """The calling-window rules for a callback to `call`'s lead, read once per request."""

    def __init__(self, location: Location, deps: ApiDependencies, policy: CampaignPolicy) -> None:
        self.location = location
        self._deps = deps
        self._policy = policy

    @classmethod
    async def of(cls, deps: ApiDependencies, call: Call) -> CallbackRules:
        if not call.lead_number:
            raise ApiError(422, "call_has_no_number", "the call has no lead number to call back", field="call_id")
        lead = await deps.store.get_lead(call.lead_id) if call.lead_id else None
        campaign = await deps.store.get_campaign(call.campaign_id) if call.campaign_id else None
        return cls(locate(contact_request(call.lead_number, lead)), deps, policy_for_campaign(campaign))

    def _book(self) -> RuleBook:
        # The gate's own copy (ApiDependencies.rulebook), so a callback is offered by the very
        # rules the gate will dial it by. Fail closed: without them no time is known to be allowed.
        if self._deps.rulebook is None:
            raise ApiError(503, "rules_unavailable", "the calling-window rules are unusable (the rule data did not load)")
        return self._deps.rulebook

    def refusal(self, at: dt.datetime) -> str | None:
        """Why the gate would block a call at `at` (one sentence), or None."""
        reasons = window_reasons(self.location, self._policy, self._book(), at,
                                 self._deps.gate_options)
        return reasons[0].message if reasons else None

    def day(self, day: dt.date | None, now: dt.datetime) -> tuple[dt.date, list[dt.datetime]]:
        """Every 30-minute start on `day` (the lead's local date in its first zone; default
        today there) at which the gate would allow the call, from 5 minutes ahead of `now`."""
        zone = ZoneInfo(self.location.zones[0]) if self.location.zones else dt.UTC
        day = day or now.astimezone(zone).date()
        start = dt.datetime.combine(day, dt.time(0, 0), zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), zone).astimezone(dt.UTC)
        earliest = now + LEAD_TIME
        times = callable_times(self.location, self._policy, self._book(), start, end, SLOT,
                               self._deps.gate_options)
        return day, [at for at in times if at >= earliest]
