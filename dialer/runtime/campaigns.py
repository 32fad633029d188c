"""The one answer for a campaign id the CRM does not know, whichever endpoint it names."""

from __future__ import annotations

from typing import NoReturn

from crm_bridge.store import Campaign, CrmStore
from dialer.runtime.errors import Refused

CAMPAIGN_NOT_FOUND = "campaign_not_found"
CAMPAIGN_NOT_RUNNING = "campaign_not_running"


async def known_campaign(store: CrmStore, campaign_id: str) -> Campaign:
    """The CRM's campaign `campaign_id`, or 404 `campaign_not_found` (`field`: `campaign_id`):
    what every `/v1/campaigns/{campaign_id}...` endpoint answers for an id it does not know, as the
    admin API does (docs/api.md, "Campaigns"). A CRM branches on this one code; `campaign_not_running`
    (409) is kept for a campaign that exists but is not dialing on this controller. While
    PostgreSQL does not answer, the lookup's 503 `database_unavailable` goes through."""
    campaign = await store.get_campaign(campaign_id)
    if campaign is None:
        raise Refused(404, CAMPAIGN_NOT_FOUND, f"no campaign {campaign_id!r}", field_name="campaign_id")
    return campaign


def not_running(campaign_id: str) -> Refused:
    """409 `campaign_not_running`, for a campaign known to exist."""
    return Refused(409, CAMPAIGN_NOT_RUNNING, f"campaign {campaign_id!r} is not running on this controller",
                   field_name="campaign_id")


async def refuse_not_running(store: CrmStore, campaign_id: str) -> NoReturn:
    """For a campaign this controller has no runner of: 404 `campaign_not_found` when the CRM
    has no such campaign, else 409 `campaign_not_running`."""
    await known_campaign(store, campaign_id)
    raise not_running(campaign_id)
