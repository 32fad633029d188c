"""Campaign control (pure checks, then the API with its audit) and the wallboard snapshot with
its alerts."""

from __future__ import annotations

import time as clock
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from compliance_rules.freshness import FreshnessStatus, ListFreshness
from compliance_rules.ruleset import Confidence
from crm_bridge.admin import Actor, Admin, Entity
from crm_bridge.apply import apply_record
from crm_bridge.kinds import RecordKind
from crm_bridge.records import DialMode, validate
from crm_bridge.store import Campaign, CrmStore, TokenRole
from dialer.api.wallboard import AlertInputs, alerts
from dialer.campaign.agent import AgentSnapshot, AgentState
from dialer.campaign.control import CampaignControl, ControlError, campaign_record, revise, settings_of
from tests.api.conftest import open_api

pytestmark = pytest.mark.timeout(60)
CAMPAIGN = Campaign(campaign_id="ctl-1", name="Control", caller_id=None, window_start=None, window_end=None,
                    dial_mode=DialMode.PROGRESSIVE, purpose="telemarketing", required_consents=(), amd_enabled=True,
                    amd_settings={}, speed_to_lead=False, seller_name=None, dnc_callback_number=None,
                    max_abandon_rate=0.03, active=True)


def test_revise_keeps_the_law() -> None:
    assert revise(CAMPAIGN, {"abandon_setpoint": 0.02}).abandon_setpoint == 0.02
    for bad in (0.031, 0, -0.01, True, "0.02"):
        with pytest.raises(ControlError) as error:
            revise(CAMPAIGN, {"abandon_setpoint": bad})
        assert error.value.field == "abandon_setpoint"
    with pytest.raises(ControlError):  # above the campaign's own ceiling
        revise(CAMPAIGN.__class__(**{**CAMPAIGN.__dict__, "max_abandon_rate": 0.01}), {"abandon_setpoint": 0.02})
    narrowed = revise(CAMPAIGN, {"window_start": "09:30", "window_end": "20:00"})
    assert (narrowed.window_start, narrowed.window_end) == (time(9, 30), time(20, 0))
    for change, field in (({"window_start": "07:59", "window_end": "20:00"}, "window_start"),
                          ({"window_start": "09:00", "window_end": "21:01"}, "window_end"),
                          ({"window_start": "09:00"}, "window_end"),
                          ({"window_start": "12:00", "window_end": "11:00"}, "window_end"),
                          ({"window_start": "noon", "window_end": "20:00"}, "window_start"),
                          ({"window_start": "09:00:30", "window_end": "20:00"}, "window_start"), ({"dial_mode": "manual"}, "dial_mode"),
                          ({"dial_mode": "predictive"}, "seller_name"), ({"amd_settings": {"total_analysis_time_ms": -4}},
                                                                         "amd_settings"),
                          ({"amd_settings": {"colour": 1}}, "amd_settings"),
                          ({"dnc_callback_number": "555"}, "dnc_callback_number"), ({"caller_id": "x"}, "caller_id")):
        with pytest.raises(ControlError) as error:
            revise(CAMPAIGN, change)
        assert error.value.field == field, change
    predictive = revise(CAMPAIGN, {"dial_mode": "predictive", "seller_name": "Acme Insurance",
                                   "dnc_callback_number": "(212) 555-0100"})
    assert predictive.dnc_callback_number == "+12125550100"
    assert settings_of(predictive)["dial_mode"] == "predictive"
    assert campaign_record(narrowed)["window_start"] == "09:30:00"


def _freshness(name: str, status: FreshnessStatus, days: int | None) -> ListFreshness:
    return ListFreshness(name, date(2026, 11, 1), date(2026, 12, 1), status, days, "31 days", "16 CFR 310.4",
                         Confidence.HIGH)


def test_alerts() -> None:
    now = clock.time()
    wrapping = AgentSnapshot("ann", AgentState.WRAP_UP, now - 100, 3, ("c1",), "ags-1", wrap_up_until=now - 40)
    fine = AgentSnapshot("bob", AgentState.WRAP_UP, now - 10, 3, ("c1",), "ags-2", wrap_up_until=now + 5)
    found = alerts(AlertInputs(abandon={"c1": (1000, 26), "c2": (1000, 31), "c3": (1000, 10), "c4": (0, 0)},
                               lists=[_freshness("federal", FreshnessStatus.DUE_SOON, 5),
                                      _freshness("state:TX", FreshnessStatus.STALE, -1),
                                      _freshness("state:PA", FreshnessStatus.OK, 40)],
                               recordings_pending=2, agents=[wrapping, fine], now=now))
    codes = [(alert.severity, alert.code, alert.campaign_id or alert.list_name or alert.agent_id) for alert in found]
    assert codes == [("critical", "abandon_rate_over_limit", "c2"), ("critical", "dnc_list_stale", "state:TX"),
                     ("warning", "abandon_rate_near_limit", "c1"), ("warning", "dnc_list_due", "federal"),
                     ("warning", "recordings_pending_archive", None), ("warning", "wrap_up_overrun", "ann")]
    # The lists are named as a supervisor reads them, not by their keys ("state:TX").
    messages = {alert.list_name: alert.message for alert in found if alert.list_name}
    assert messages["state:TX"].startswith("The TX state Do Not Call list is stale: the gate blocks")
    assert messages["federal"] == "The National DNC Registry must be refreshed by 2026-12-01 (5 days left)"


async def test_settings_api_audits_and_wallboard(reports_dsn: str, redis_url: str, redis_prefix: str,
                                                 tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with open_api(reports_dsn, redis_url, redis_prefix, tmp_path / "state") as api:
        await api.outbox.put("campaign_upsert", campaign_record(CAMPAIGN))
        assert await api.outbox.flush(10)
        conn = await asyncpg.connect(reports_dsn)
        try:  # 30 days of this campaign: 40 live answers, 2 abandoned (5 %), and 3 dials today
            for n in range(40):
                await conn.execute(
                    "INSERT INTO calls (call_id, version, direction, campaign_id, requested_at, amd_result, abandoned, "
                    "lead_answered_at) VALUES ($1, 1, 'outbound', 'ctl-1', $2, 'HUMAN', $3, $2)",
                    f"ctl-call-{n}", now - timedelta(days=n % 20, minutes=1), n < 2)
        finally:
            await conn.close()
        supervisor = api.auth(await api.token(TokenRole.SUPERVISOR))
        answer = await api.client.post("/v1/campaigns/ctl-1/settings", headers=supervisor,
                                       json={"abandon_setpoint": 0.02, "window_start": "09:00",
                                             "window_end": "20:30"})
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["abandon_setpoint"] == 0.02
        answer = await api.client.post("/v1/campaigns/ctl-1/settings", headers=supervisor,
                                       json={"abandon_setpoint": 0.05})
        assert answer.status == 422 and (await answer.json())["field"] == "abandon_setpoint"
        answer = await api.client.post("/v1/campaigns/nope/settings", headers=supervisor, json={"dial_mode": "power"})
        assert answer.status == 404
        answer = await api.client.post("/v1/campaigns/ctl-1/settings", headers=api.auth(api.crm),
                                       json={"dial_mode": "power"})
        assert answer.status == 403
        answer = await api.client.post("/v1/campaigns/ctl-1/pause", headers=supervisor)
        assert answer.status == 503  # no campaign runtime in this app
        assert await api.outbox.flush(10)
        stored = await api.store.get_campaign("ctl-1")
        assert stored is not None and stored.abandon_setpoint == 0.02 and stored.window_start == time(9)
        answer = await api.client.get("/v1/campaigns/ctl-1/changes", headers=supervisor)
        changes = (await answer.json())["changes"]
        assert len(changes) == 1 and changes[0]["action"] == "settings"
        assert changes[0]["before"] == {"abandon_setpoint": None, "window_end": None, "window_start": None}
        assert changes[0]["after"] == {"abandon_setpoint": 0.02, "window_end": "20:30", "window_start": "09:00"}
        assert changes[0]["actor_role"] == "supervisor"

        answer = await api.client.get("/v1/wallboard", headers=supervisor)
        assert answer.status == 200, await answer.text()
        board = await answer.json()
        campaign = next(row for row in board["campaigns"] if row["campaign_id"] == "ctl-1")
        assert campaign["abandon_30_days"] == {"rate": 0.05, "live_answers": 40, "abandoned": 2, "limit": 0.03}
        assert campaign["running"] is False and campaign["abandon_setpoint"] == 0.02
        assert campaign["today"]["dials"] >= 1
        assert any(alert["code"] == "abandon_rate_over_limit" and alert["campaign_id"] == "ctl-1"
                   for alert in board["alerts"])
        assert (await api.client.get("/v1/wallboard", headers=api.auth(api.agent))).status == 403


class _HeldOutbox:
    """A record sink that keeps what it is given: the test decides when the outbox delivers, so
    an admin's edit lands between the control's read and the apply of its write."""

    def __init__(self) -> None:
        self.items: list[tuple[RecordKind, dict[str, Any]]] = []

    async def put(self, kind: str, record: Mapping[str, object]) -> int:
        self.items.append((RecordKind(kind), dict(record)))
        return len(self.items)

    async def put_many(self, items: Sequence[tuple[str, Mapping[str, object]]]) -> list[int]:
        return [await self.put(kind, record) for kind, record in items]

    async def deliver(self, conn: asyncpg.Connection) -> None:
        for kind, record in self.items:
            async with conn.transaction():
                await apply_record(conn, kind, validate(kind.value, record))


class _Runtime:
    """What campaign control asks of the campaign runtime, without one."""

    def __init__(self) -> None:
        self.paused = False
        self.settings: list[Campaign] = []

    async def pause_campaign(self, campaign_id: str, paused: bool) -> tuple[bool, str]:
        was, self.paused = self.paused, paused
        return was, "status"

    def change_settings(self, campaign: Campaign, *, repace: bool) -> None:
        self.settings.append(campaign)


async def test_control_and_admin_edits_in_quick_succession_both_survive(reports_dsn: str) -> None:
    campaign_id = f"ctl-race-{uuid.uuid4().hex[:8]}"
    store = await CrmStore.open(reports_dsn)
    conn = await asyncpg.connect(reports_dsn)
    try:
        async with conn.transaction():
            await apply_record(conn, RecordKind.CAMPAIGN_UPSERT, validate(
                "campaign_upsert", campaign_record(replace(CAMPAIGN, campaign_id=campaign_id))))
        held, runtime = _HeldOutbox(), _Runtime()
        control = CampaignControl(store, held, cast(Any, runtime))
        admin, actor = Admin(store), Actor("tok_admin", "admin", "api")
        # The supervisor lowers the setpoint (the control reads the campaign, its write is queued);
        # an admin renames the campaign and overrides its calling window by SQL; the supervisor
        # pauses; then the outbox delivers (and, after a crash, delivers it all again).
        await control.change(campaign_id, {"abandon_setpoint": 0.02}, "tok_supervisor", "supervisor")
        await admin.update(Entity.CAMPAIGN, campaign_id, {"name": "Renamed by the admin",
                                                          "window_start": time(10), "window_end": time(19)}, actor)
        assert await control.pause(campaign_id, True, "tok_supervisor", "supervisor") == "status"
        await held.deliver(conn)
        await held.deliver(conn)
        stored = await store.get_campaign(campaign_id)
        assert stored is not None and stored.name == "Renamed by the admin"
        assert (stored.window_start, stored.window_end) == (time(10), time(19))
        assert stored.abandon_setpoint == 0.02 and runtime.paused
        # The other way round: the admin edits first, the control's change is applied after.
        held.items.clear()
        await admin.update(Entity.CAMPAIGN, campaign_id, {"amd_enabled": False}, actor)
        await control.change(campaign_id, {"dial_mode": "power"}, "tok_supervisor", "supervisor")
        await admin.update(Entity.CAMPAIGN, campaign_id, {"abandon_setpoint": 0.015}, actor)
        await held.deliver(conn)
        stored = await store.get_campaign(campaign_id)
        assert stored is not None and stored.dial_mode is DialMode.POWER and not stored.amd_enabled
        assert stored.abandon_setpoint == 0.015 and stored.name == "Renamed by the admin"
        changes = [row["action"] for row in await store.list_campaign_changes(campaign_id)]
        assert sorted(changes) == ["pause", "settings", "settings"]
    finally:
        await conn.close()
        await store.close()
