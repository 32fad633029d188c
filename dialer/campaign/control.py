"""Campaign control: the one place a running campaign's control settings change (start, pause,
resume, stop; dial mode, the abandon setpoint, calling-window overrides, AMD and safe-harbor
settings), each change audited in `campaign_changes` (who, when, the settings before and after)
through the outbox, in the same write as the changed settings (only those columns: the admin
API edits the campaign's row by SQL meanwhile, and neither write may undo the other's).

The pure part (`revise`) checks a change against the law and the campaign: the setpoint never
above 3 % (47 CFR 64.1200(a)(7)) nor the campaign's own ceiling; a window override only narrows
8 a.m.-9 p.m. (47 CFR 64.1200(c)(1); the gate keeps the most restrictive of it and the state's
rules anyway); a predictive campaign needs the seller's name and an opt-out number for its
safe-harbor message (64.1200(a)(7)(i)(A)); AMD parameters within what Asterisk takes.
`CampaignControl` does the IO. Creating and editing campaigns otherwise is the admin API's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime, time
from typing import Any

from compliance_rules.numbers import parse_number
from crm_bridge.kinds import RecordKind
from crm_bridge.outbox import RecordSink
from crm_bridge.records import FIELDS, DialMode
from crm_bridge.store import Campaign, CrmStore
from dialer.campaign.amd import AMD_PARAMETERS, AmdSettingsError, amd_arguments
from dialer.campaign.dialing import CampaignStatus
from dialer.campaign.runtime import CampaignRuntime
from dialer.runtime.campaigns import known_campaign
from dialer.runtime.errors import Refused

LEGAL_LIMIT = 0.03
EARLIEST, LATEST = time(8, 0), time(21, 0)
# The settings a supervisor may change here (and that the audit shows before and after).
SETTINGS = ("dial_mode", "abandon_setpoint", "window_start", "window_end", "amd_enabled", "amd_settings",
            "seller_name", "dnc_callback_number")
# AMD settings other than Asterisk's AMD() parameters that the dialing loop reads.
_AMD_EXTRAS = {"machine_action", "lines_per_agent", "preview_seconds"}


class ControlError(ValueError):
    """A change refused; `field` names the setting."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def settings_of(campaign: Campaign) -> dict[str, Any]:
    """The control settings of a campaign, as JSON values."""
    values = {name: getattr(campaign, name) for name in SETTINGS}
    values["dial_mode"] = campaign.dial_mode.value
    for name in ("window_start", "window_end"):
        values[name] = None if values[name] is None else values[name].strftime("%H:%M")
    values["amd_settings"] = dict(campaign.amd_settings)
    return values


def revise(campaign: Campaign, change: Mapping[str, Any]) -> Campaign:
    """The campaign with `change` applied (only the settings named; None clears an optional one),
    or `ControlError`."""
    unknown = sorted(set(change) - set(SETTINGS))
    if unknown:
        raise ControlError(f"{unknown[0]} is not a control setting", unknown[0])
    values: dict[str, Any] = {}
    if "dial_mode" in change:
        try:
            values["dial_mode"] = DialMode(change["dial_mode"])
        except ValueError:
            raise ControlError(f"dial_mode must be one of {', '.join(DialMode)}", "dial_mode") from None
    if "abandon_setpoint" in change:
        setpoint = change["abandon_setpoint"]
        ceiling = min(LEGAL_LIMIT, campaign.max_abandon_rate)
        if setpoint is not None and (isinstance(setpoint, bool) or not isinstance(setpoint, int | float)
                                     or not 0 < setpoint <= ceiling):
            raise ControlError(f"abandon_setpoint must be above 0 and at most {ceiling:.4f} (the legal 3 % and "
                               "the campaign's ceiling)", "abandon_setpoint")
        values["abandon_setpoint"] = None if setpoint is None else float(setpoint)
    for name in ("window_start", "window_end"):
        if name in change:
            values[name] = _time(change[name], name)
    if "amd_enabled" in change:
        if not isinstance(change["amd_enabled"], bool):
            raise ControlError("amd_enabled must be true or false", "amd_enabled")
        values["amd_enabled"] = change["amd_enabled"]
    if "amd_settings" in change:
        settings = change["amd_settings"]
        if not isinstance(settings, Mapping):
            raise ControlError("amd_settings must be an object", "amd_settings")
        known = {name for name, _, _ in AMD_PARAMETERS} | _AMD_EXTRAS
        strange = sorted(str(name) for name in settings if name not in known)
        if strange:
            raise ControlError(f"amd_settings.{strange[0]} is not an AMD setting", "amd_settings")
        try:
            amd_arguments({name: value for name, value in settings.items() if name not in _AMD_EXTRAS})
        except AmdSettingsError as error:
            raise ControlError(str(error), "amd_settings") from None
        values["amd_settings"] = dict(settings)
    if "seller_name" in change:
        name = change["seller_name"]
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
            raise ControlError("seller_name must be 1-200 characters", "seller_name")
        values["seller_name"] = name
    if "dnc_callback_number" in change:
        number = change["dnc_callback_number"]
        if number is not None:
            number = parse_number(str(number)).e164
            if number is None:
                raise ControlError("dnc_callback_number must be a dialable US number", "dnc_callback_number")
        values["dnc_callback_number"] = number
    revised = replace(campaign, **values)
    start, end = revised.window_start, revised.window_end
    if (start is None) != (end is None):
        raise ControlError("window_start and window_end go together (give both, or clear both)",
                           "window_end" if end is None else "window_start")
    if start is not None and end is not None and start >= end:
        raise ControlError("window_start must be before window_end", "window_end")
    if revised.dial_mode is DialMode.PREDICTIVE and not (revised.seller_name and revised.dnc_callback_number):
        raise ControlError("a predictive campaign needs seller_name and dnc_callback_number (its safe-harbor "
                           "message names the seller and a number to opt out)", "seller_name")
    return revised


def _time(value: Any, name: str) -> time | None:
    if value is None:
        return None
    try:
        parsed = time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    # Whole minutes only: the window is shown and kept as HH:MM, so seconds would be dropped silently.
    if parsed is None or parsed.tzinfo is not None or parsed.second or parsed.microsecond:
        raise ControlError(f"{name} must be a local time HH:MM", name)
    if not EARLIEST <= parsed <= LATEST:
        raise ControlError(f"{name} must be within 08:00-21:00 (an override only narrows the legal window)", name)
    return parsed


def campaign_record(campaign: Campaign) -> dict[str, Any]:
    """The campaign's whole `campaign_upsert` record (the columns that record carries; the admin
    API's own columns, such as `dispositions` and `prompts`, are left as they are)."""
    values = {name: value for name, value in asdict(campaign).items() if name in FIELDS[RecordKind.CAMPAIGN_UPSERT]}
    values["dial_mode"] = campaign.dial_mode.value
    values["required_consents"] = list(campaign.required_consents)
    values["amd_settings"] = dict(campaign.amd_settings)
    for name in ("window_start", "window_end"):
        values[name] = None if values[name] is None else values[name].isoformat()
    return values


def settings_record(campaign: Campaign, names: Iterable[str]) -> dict[str, Any]:
    """The `campaign_settings` patch of the settings `names` (a window override goes as a pair):
    only those columns are written, so an admin's edit of the campaign's other columns (or other
    settings) made since the control read it survives."""
    wanted = set(names)
    if wanted & {"window_start", "window_end"}:
        wanted |= {"window_start", "window_end"}
    whole = campaign_record(campaign)
    return {"campaign_id": campaign.campaign_id, **{name: whole[name] for name in SETTINGS if name in wanted}}


def change_record(campaign_id: str, action: str, actor: str, role: str, at: datetime, before: Mapping[str, Any],
                  after: Mapping[str, Any]) -> dict[str, Any]:
    """The `campaign_change` audit record."""
    return {"change_id": str(uuid.uuid4()), "campaign_id": campaign_id, "action": action, "actor": actor,
            "actor_role": role, "changed_at": at.isoformat(), "before": dict(before), "after": dict(after)}


class CampaignControl:
    """Control actions and settings changes, applied to the running campaign at once and written
    (the changed settings and the audit row together) through the outbox."""

    def __init__(self, store: CrmStore, records: RecordSink, runtime: CampaignRuntime | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.records = records
        self.runtime = runtime
        self.clock = clock

    async def _campaign(self, campaign_id: str) -> Campaign:
        return await known_campaign(self.store, campaign_id)

    def _running(self) -> CampaignRuntime:
        if self.runtime is None:
            raise Refused(503, "controller_unavailable", "this API runs without the campaign runtime")
        return self.runtime

    async def audit(self, campaign_id: str, action: str, actor: str, role: str, before: Mapping[str, Any],
                    after: Mapping[str, Any]) -> None:
        await self.records.put(RecordKind.CAMPAIGN_CHANGE,
                               change_record(campaign_id, action, actor, role, self.clock(), before, after))

    async def change(self, campaign_id: str, change: Mapping[str, Any], actor: str, role: str) -> Campaign:
        campaign = await self._campaign(campaign_id)
        try:
            revised = revise(campaign, change)
        except ControlError as error:
            raise Refused(422, "invalid_field", str(error), field_name=error.field) from None
        before, after = settings_of(campaign), settings_of(revised)
        changed = {name for name in SETTINGS if before[name] != after[name]}
        await self.records.put_many([
            (RecordKind.CAMPAIGN_SETTINGS, settings_record(revised, changed)),
            (RecordKind.CAMPAIGN_CHANGE, change_record(
                campaign_id, "settings", actor, role, self.clock(),
                {name: before[name] for name in sorted(changed)}, {name: after[name] for name in sorted(changed)})),
        ])
        if self.runtime is not None:
            pacing = {"dial_mode", "abandon_setpoint", "amd_settings"} & changed
            self.runtime.change_settings(revised, repace=bool(pacing))
        return revised

    async def pause(self, campaign_id: str, paused: bool, actor: str, role: str) -> CampaignStatus:
        runtime = self._running()
        was, status = await runtime.pause_campaign(campaign_id, paused)
        await self.audit(campaign_id, "pause" if paused else "resume", actor, role, {"paused": was},
                         {"paused": paused})
        return status
