"""HTTP endpoints of campaign control (supervisor and admin tokens): pause and resume a running
campaign, change its control settings, and read the audit of every change
(`dialer.campaign.control`). Start and stop are `POST /v1/campaigns/{id}/start|stop`
(`dialer.campaign.api`), audited the same way."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, TOKEN, ApiError
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Line, RequestModel, ResponseModel, UtcTime
from dialer.campaign.api import CAMPAIGNS, NOT_DIALING
from dialer.campaign.control import CampaignControl, settings_of
from dialer.campaign.openapi import CampaignStatusBody
from dialer.runtime.campaigns import known_campaign

routes = RouteTable("campaign control")
STAFF = (TokenRole.SUPERVISOR, TokenRole.ADMIN)
CAMPAIGN_ID = {"campaign_id": "the campaign's id"}


class SettingsRequest(RequestModel):
    """The settings to change (only those given; null clears an optional one)."""

    dial_mode: Line | None = Field(default=None, description="preview, progressive, power or predictive")
    abandon_setpoint: float | None = Field(
        default=None, description="the predictive pacer's target for the 30-day abandon rate, above 0 and at most "
                                  "0.03 (47 CFR 64.1200(a)(7)) and the campaign's max_abandon_rate")
    window_start: Line | None = Field(default=None, description="HH:MM local; narrows 08:00-21:00")
    window_end: Line | None = Field(default=None, description="HH:MM local; narrows 08:00-21:00")
    amd_enabled: bool | None = None
    amd_settings: dict[str, Any] | None = Field(default=None, description="AMD() parameters and machine_action")
    seller_name: Line | None = Field(default=None, description="named in the safe-harbor message")
    dnc_callback_number: Line | None = Field(default=None, description="the opt-out number the message gives")


class CampaignSettingsBody(ResponseModel):
    campaign_id: str
    dial_mode: str
    abandon_setpoint: float | None
    window_start: str | None
    window_end: str | None
    amd_enabled: bool
    amd_settings: dict[str, Any]
    seller_name: str | None
    dnc_callback_number: str | None


class CampaignChangeBody(ResponseModel):
    change_id: str
    campaign_id: str
    action: str = Field(description="start, stop, pause, resume or settings")
    actor: str = Field(description="the API token that asked")
    actor_role: str
    changed_at: UtcTime
    before: dict[str, Any]
    after: dict[str, Any]


class CampaignChangesBody(ResponseModel):
    changes: list[CampaignChangeBody]


def control(request: web.Request) -> CampaignControl:
    deps = request.app[DEPS]
    return CampaignControl(deps.store, deps.records, request.app.get(CAMPAIGNS), deps.clock)


def _actor(request: web.Request) -> tuple[str, str]:
    token = request[TOKEN]
    return token.token_id, token.role.value


@routes.post("/v1/campaigns/{campaign_id}/pause", "pauseCampaign",
             "Pause a running campaign: no new dials, the calls up finish (audited)", roles=STAFF,
             parameters=CAMPAIGN_ID, responses={200: Answer(CampaignStatusBody, "the campaign's figures")},
             errors={404: "`campaign_not_found`", 409: NOT_DIALING, 503: "this API runs without the campaign runtime"})
async def pause_campaign(request: web.Request) -> Reply:
    status = await control(request).pause(request.match_info["campaign_id"], True, *_actor(request))
    return Reply(CampaignStatusBody.of(status))


@routes.post("/v1/campaigns/{campaign_id}/resume", "resumeCampaign", "Resume a paused campaign (audited)",
             roles=STAFF, parameters=CAMPAIGN_ID, responses={200: Answer(CampaignStatusBody, "the campaign's figures")},
             errors={404: "`campaign_not_found`", 409: NOT_DIALING, 503: "this API runs without the campaign runtime"})
async def resume_campaign(request: web.Request) -> Reply:
    status = await control(request).pause(request.match_info["campaign_id"], False, *_actor(request))
    return Reply(CampaignStatusBody.of(status))


@routes.post("/v1/campaigns/{campaign_id}/settings", "changeCampaignSettings",
             "Change a campaign's control settings (dial mode, abandon setpoint, window overrides, AMD, safe "
             "harbor); a running campaign uses them from its next dial; audited with the values before and after",
             roles=STAFF, parameters=CAMPAIGN_ID, body=SettingsRequest,
             responses={200: Answer(CampaignSettingsBody, "the campaign's settings now")},
             errors={404: "`campaign_not_found`", 422: "a setting is invalid or not allowed (`field` names it)"})
async def change_settings(request: web.Request, body: SettingsRequest) -> Reply:
    change = {name: getattr(body, name) for name in body.model_fields_set}
    if not change:
        raise ApiError(422, "invalid_field", "give at least one setting", field="dial_mode")
    campaign = await control(request).change(request.match_info["campaign_id"], change, *_actor(request))
    return Reply(CampaignSettingsBody(campaign_id=campaign.campaign_id, **settings_of(campaign)))


@routes.get("/v1/campaigns/{campaign_id}/changes", "listCampaignChanges",
            "The audit of a campaign's control: every action and settings change, newest first (last 500)",
            roles=STAFF, parameters=CAMPAIGN_ID, responses={200: Answer(CampaignChangesBody, "the changes")},
            errors={404: "`campaign_not_found`"})
async def list_changes(request: web.Request) -> Reply:
    campaign_id = request.match_info["campaign_id"]
    store = request.app[DEPS].store
    await known_campaign(store, campaign_id)  # no audit at all is not "no changes yet"
    rows = await store.list_campaign_changes(campaign_id)
    changes = [CampaignChangeBody.model_validate(row) for row in rows]
    return Reply(CampaignChangesBody(changes=changes))
