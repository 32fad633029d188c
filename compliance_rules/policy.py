"""The gate's view of a campaign: purpose, dial mode, stricter windows, consent needs, margin.

The CRM's campaigns are mapped onto this by the controller; the CLI loads one from a small
JSON or YAML file, or uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from compliance_rules.model import DialMode, Purpose
from compliance_rules.ruleset import RuleDataError, WeeklyHours, parse_hours

DEFAULT_MARGIN = timedelta(minutes=3)


class PolicyError(ValueError):
    """A campaign policy file is malformed; the message names the field."""


@dataclass(frozen=True)
class CampaignPolicy:
    """How one campaign may contact leads, on top of the law's rules (it can only restrict)."""

    campaign_id: str | None = None
    purpose: Purpose = Purpose.TELEMARKETING
    dial_mode: DialMode = DialMode.PREDICTIVE
    # Campaign-configured window (called party's local time), intersected with the law's.
    window: WeeklyHours | None = None
    # Stop launching this long before a window closes, so no call is still ringing after it
    # (47 CFR 64.1200(c)(1): "before the hour of 8 a.m. or after 9 p.m.").
    margin: timedelta = DEFAULT_MARGIN
    require_pewc: bool = False
    require_ptc: bool = False  # Medicare: permission to contact under 12 months old
    consent_scope: str | None = None  # product a PTC must name, when set
    subject: str | None = None  # frequency-cap subject ("same subject matter"); default: purpose
    max_attempts_per_24h: int | None = None  # campaign's own cap, on top of the states'

    @property
    def cap_subject(self) -> str:
        return self.subject or self.purpose.value

    @property
    def needs_ptc(self) -> bool:
        return self.require_ptc or self.purpose is Purpose.MEDICARE_MARKETING


_FIELDS = {
    "campaign_id", "purpose", "dial_mode", "window", "margin_seconds", "require_pewc", "require_ptc",
    "consent_scope", "subject", "max_attempts_per_24h",
}


def policy_from_mapping(raw: Any) -> CampaignPolicy:
    """Build a policy from parsed JSON/YAML; unknown or mistyped fields are named in the error."""
    if not isinstance(raw, dict):
        raise PolicyError("a campaign policy must be a mapping of fields")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise PolicyError(f"unknown campaign policy field(s): {', '.join(sorted(unknown))}")
    try:
        purpose = Purpose(raw.get("purpose", Purpose.TELEMARKETING))
    except ValueError:
        raise PolicyError(f"purpose must be one of {', '.join(p.value for p in Purpose)}") from None
    try:
        dial_mode = DialMode(raw.get("dial_mode", DialMode.PREDICTIVE))
    except ValueError:
        raise PolicyError(f"dial_mode must be one of {', '.join(m.value for m in DialMode)}") from None
    window = None
    if raw.get("window") is not None:
        try:
            window = parse_hours(raw["window"], "window")
        except RuleDataError as error:
            raise PolicyError(str(error)) from None
    margin = raw.get("margin_seconds", DEFAULT_MARGIN.total_seconds())
    if not isinstance(margin, int | float) or isinstance(margin, bool) or margin < 0:
        raise PolicyError("margin_seconds must be a number of seconds >= 0")
    for flag in ("require_pewc", "require_ptc"):
        if not isinstance(raw.get(flag, False), bool):
            raise PolicyError(f"{flag} must be true or false")
    cap = raw.get("max_attempts_per_24h")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise PolicyError("max_attempts_per_24h must be a whole number >= 1")
    campaign_id = raw.get("campaign_id")
    return CampaignPolicy(
        campaign_id=None if campaign_id is None else str(campaign_id),
        purpose=purpose,
        dial_mode=dial_mode,
        window=window,
        margin=timedelta(seconds=margin),
        require_pewc=raw.get("require_pewc", False),
        require_ptc=raw.get("require_ptc", False),
        consent_scope=raw.get("consent_scope"),
        subject=raw.get("subject"),
        max_attempts_per_24h=cap,
    )


def load_policy(path: Path) -> CampaignPolicy:
    """Load a policy from a `.json`, `.yaml` or `.yml` file (JSON is valid YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"cannot read campaign policy {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PolicyError(f"campaign policy {path} is not valid JSON or YAML") from None
    return policy_from_mapping(raw)
