"""The admin API and `dialer agent|campaign|lists|token` against the real PostgreSQL: what SQL was
needed for before (agents, campaigns, lists and their campaigns, tokens), each change audited
(who, when, before, after) and chained in the audit trail."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from crm_bridge.audit_chain import ADMIN_CHANGE_CHAIN
from crm_bridge.audit_log import verify_trail
from crm_bridge.store import TokenRole
from dialer.campaign.caller_id import check_caller_id
from dialer.cli import main
from dialer.provision.ports import free_local_port
from dialer.provision.trunks import CallerIdRecord
from tests.api.conftest import Api, open_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _post(api: Api, token: str, path: str, body: dict[str, Any], method: str = "POST") -> tuple[int, Any]:
    async with api.client.request(method, path, json=body, headers=api.auth(token)) as response:
        return response.status, await response.json(content_type=None)


async def test_an_admin_creates_updates_and_disables_an_agent_and_each_change_is_audited(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    agent_id = _id("ann")
    status, body = await _post(api, admin, "/v1/agents", {"agent_id": agent_id, "name": "Ann", "sip_endpoint": "agent1001"})
    assert status == 201, body
    assert body["sip_endpoint"] == "agent1001" and body["active"] is True
    assert (await _post(api, admin, "/v1/agents", {"agent_id": agent_id, "name": "Ann"}))[1]["error"] == "agent_exists"
    status, body = await _post(api, admin, f"/v1/agents/{agent_id}", {"sip_endpoint": "agent1002-web"}, "PATCH")
    assert status == 200 and body["sip_endpoint"] == "agent1002-web" and body["name"] == "Ann"
    status, body = await _post(api, admin, f"/v1/agents/{agent_id}/disable", {})
    assert status == 200 and body["active"] is False
    # The click-to-call runtime reads the same row: the agent is known now (no SQL was needed).
    agent = await api.store.get_agent(agent_id)
    assert agent is not None and agent.sip_endpoint == "agent1002-web" and not agent.active

    async with api.client.get("/v1/admin-changes", params={"entity": "agent", "entity_id": agent_id},
                              headers=api.auth(admin)) as response:
        changes = (await response.json())["changes"]
    assert [change["action"] for change in changes] == ["create", "update", "disable"]
    assert changes[1]["before"]["sip_endpoint"] == "agent1001" and changes[1]["after"]["sip_endpoint"] == "agent1002-web"
    assert all(change["actor_role"] == "admin" and change["actor"].startswith("tok_") for change in changes)
    connection = await asyncpg.connect(api.pg_dsn)
    try:
        report = await verify_trail(connection, trusted_keys=(), chains=(ADMIN_CHANGE_CHAIN,))
    finally:
        await connection.close()
    assert report.ok, report.first_break
    assert report.chains[0].entries >= 3


async def test_only_an_admin_changes_things_and_bad_input_is_a_named_422(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    status, body = await _post(api, api.crm, "/v1/agents", {"agent_id": _id("x"), "name": "X"})
    assert status == 403 and body["error"] == "forbidden"
    status, body = await _post(api, admin, "/v1/agents", {"agent_id": "has space", "name": "X"})
    assert status == 422 and body["field"] == "agent_id"
    status, body = await _post(api, admin, "/v1/agents/nobody-here", {"name": "X"}, "PATCH")
    assert status == 404 and body["error"] == "agent_not_found"
    status, body = await _post(api, admin, "/v1/agents", {"agent_id": _id("x"), "name": "X", "role": "boss"})
    assert status == 422 and body["field"] == "role"


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"caller_id": "2125550100"}, "caller_id", "E.164"),
    ({"caller_id": "+15555550100"}, "caller_id", "not a valid"),
    ({"window_start": "07:30"}, "window_start", "08:00-21:00"),
    ({"window_start": "12:00", "window_end": "11:00"}, "window_start", "before"),
    ({"window_start": "09:00:30", "window_end": "20:00"}, "window_start", "whole minutes"),
    ({"dispositions": ["contacted"]}, "dispositions", "do_not_call"),
    ({"max_abandon_rate": 0.05}, "max_abandon_rate", "0.03"),
    ({"amd_settings": {"greeting_ms": 50}}, "amd_settings", "500"),
    ({"dial_mode": "robot"}, "dial_mode", ""),
    ({"prompts": {"safe_harbor": "../etc/passwd"}}, "prompts", "sound name"),
])
async def test_a_campaign_with_a_bad_setting_is_refused_naming_it(api: Api, fields: dict[str, Any], field: str,
                                                                 words: str) -> None:
    admin = await api.token(TokenRole.ADMIN)
    status, body = await _post(api, admin, "/v1/campaigns", {"campaign_id": _id("c"), "name": "C", **fields})
    assert status == 422, body
    assert body["field"] == field and words in body["message"], body


async def test_a_campaign_is_created_and_changed_and_its_dispositions_bind_its_calls(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    campaign_id = _id("medsupp")
    settings = {"campaign_id": campaign_id, "name": "Medicare Supplement", "dial_mode": "predictive",
                "caller_id": "+12125550100", "window_start": "09:00", "window_end": "20:00",
                "dispositions": ["contacted", "callback", "do_not_call"],
                "amd_settings": {"machine_action": "message", "greeting_ms": 1500},
                "seller_name": "Acme Insurance", "dnc_callback_number": "+12125550100",
                "prompts": {"safe_harbor": "custom/acme-safe-harbor"}}
    status, body = await _post(api, admin, "/v1/campaigns", settings)
    assert status == 201, body
    assert body["window_start"] == "09:00" and body["amd_settings"] == {"machine_action": "message", "greeting_ms": 1500}
    status, body = await _post(api, admin, f"/v1/campaigns/{campaign_id}/settings", {"dial_mode": "power"}, "PATCH")
    assert status == 200 and body["dial_mode"] == "power" and body["caller_id"] == "+12125550100"
    status, body = await _post(api, admin, f"/v1/campaigns/{campaign_id}/settings", {"window_end": "08:30"}, "PATCH")
    assert status == 422 and body["field"] == "window_start"
    campaign = await api.store.get_campaign(campaign_id)
    assert campaign is not None and campaign.prompts == {"safe_harbor": "custom/acme-safe-harbor"}
    assert campaign.dispositions == ("contacted", "callback", "do_not_call")

    call_id = _id("call")
    await api.outbox.put("call", {"call_id": call_id, "version": 1, "direction": "outbound", "lead_id": api.lead_id,
                                  "agent_id": api.agent_id, "campaign_id": campaign_id, "lead_number": api.phone,
                                  "requested_at": "2026-11-29T15:00:00+00:00"})
    assert await api.outbox.flush(10)
    # The agent's screen offers exactly the campaign's set, in its order; a call of no campaign, every code.
    offered = await api.client.get(f"/v1/calls/{call_id}/disposition-codes", headers=api.auth(api.agent))
    assert offered.status == 200 and await offered.json() == {
        "codes": ["contacted", "callback", "do_not_call"], "campaign_id": campaign_id, "from_campaign": True}
    every = await (await api.client.get(f"/v1/calls/{api.call_id}/disposition-codes", headers=api.auth(api.agent))).json()
    assert not every["from_campaign"] and {"sale", "contacted", "do_not_call"} <= set(every["codes"])
    other = await api.client.get(f"/v1/calls/{call_id}/disposition-codes", headers=api.auth(api.other_agent))
    assert other.status == 404  # another agent's call
    status, body = await _post(api, api.agent, f"/v1/calls/{call_id}/disposition", {"code": "sale"})
    assert status == 422 and body["error"] == "invalid_disposition", body
    status, body = await _post(api, api.agent, f"/v1/calls/{call_id}/disposition", {"code": "callback",
                                                                                    "callback_at": "2030-12-02T15:00:00Z"})
    assert status == 202, body


async def test_a_list_assigned_to_a_campaign_gives_it_its_leads_and_taking_it_off_retires_them(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    campaign_id, list_id = _id("camp"), _id("list")
    assert (await _post(api, admin, "/v1/campaigns", {"campaign_id": campaign_id, "name": "C"}))[0] == 201
    assert (await _post(api, admin, "/v1/lists", {"list_id": list_id, "name": "Web leads"}))[0] == 201
    status, body = await _post(api, admin, f"/v1/lists/{list_id}/leads", {"lead_ids": [api.lead_id]})
    assert status == 200 and body == {"list_id": list_id, "leads": 1, "campaign_memberships_added": 0}
    status, body = await _post(api, admin, f"/v1/lists/{list_id}/leads", {"lead_ids": ["no-such-lead"]})
    assert status == 422 and body["error"] == "unknown_lead"
    status, body = await _post(api, admin, f"/v1/campaigns/{campaign_id}/lists", {"list_id": list_id})
    assert status == 201 and body["campaign_memberships_added"] == 1, body
    assert (await _post(api, admin, f"/v1/campaigns/{campaign_id}/lists", {"list_id": list_id}))[0] == 409
    assert await api.store.campaign_lead_attempts(campaign_id, api.lead_id) == 0
    async with api.client.get(f"/v1/campaigns/{campaign_id}/lists", headers=api.auth(admin)) as response:
        assert [found["list_id"] for found in (await response.json())["lists"]] == [list_id]
    status, body = await _post(api, admin, f"/v1/campaigns/{campaign_id}/lists/{list_id}", {}, "DELETE")
    assert status == 200 and body["memberships_retired"] == 1
    connection = await asyncpg.connect(api.pg_dsn)
    try:
        row = await connection.fetchrow("SELECT done, done_reason, list_id FROM campaign_leads WHERE campaign_id = $1",
                                        campaign_id)
    finally:
        await connection.close()
    assert row is not None and row["done"] and row["done_reason"] == "list_removed" and row["list_id"] == list_id


async def test_a_token_issued_through_the_api_works_until_it_is_revoked(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    status, body = await _post(api, admin, "/v1/tokens", {"role": "agent", "agent_id": "nobody-at-all"})
    assert status == 422 and body["error"] == "unknown_agent"
    status, body = await _post(api, admin, "/v1/tokens", {"role": "crm", "label": "our CRM"})
    assert status == 201 and body["token"].startswith("dlr_")
    token_id, secret = body["token_id"], body["token"]
    async with api.client.get("/v1/calls", headers=api.auth(secret)) as response:
        assert response.status == 200
    async with api.client.get("/v1/tokens", headers=api.auth(admin)) as response:
        listed = (await response.json())["tokens"]
    assert token_id in [token["token_id"] for token in listed] and all("token" not in token for token in listed)
    status, body = await _post(api, admin, f"/v1/tokens/{token_id}", {}, "DELETE")
    assert status == 200 and body["revoked_at"] is not None
    async with api.client.get("/v1/calls", headers=api.auth(secret)) as response:
        assert response.status == 401


def test_the_commands_create_an_agent_a_campaign_and_a_list_printing_only_what_was_asked(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_PG_DSN", pg_dsn)
    monkeypatch.setenv("DIALER_ARI_PORT", str(free_local_port()))  # no Asterisk: the endpoint is taken unchecked
    agent_id, campaign_id, list_id = _id("cli-agent"), _id("cli-camp"), _id("cli-list")
    assert main(["agent", "create", agent_id, "--name", "Ann Agent", "--endpoint", "agent1001"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{agent_id}\n" and err.startswith("dialer: warning: Asterisk could not be asked") \
        and err.count("\n") == 1, err
    assert main(["agent", "create", agent_id, "--name", "Ann"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "exists already" in err
    assert main(["campaign", "create", campaign_id, "--name", "Med Supp", "--caller-id", "+12125550100",
                 "--window", "09:00-20:00", "--dial-mode", "progressive", "--amd-setting", "machine_action=message",
                 "--dispositions", "contacted,do_not_call"]) == 0
    assert capsys.readouterr().out == f"{campaign_id}\n"
    assert main(["campaign", "create", _id("bad"), "--name", "X", "--caller-id", "555-0100"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("dialer: caller_id:") and err.count("\n") == 1
    assert main(["lists", "create", list_id, "--name", "Imported"]) == 0
    assert main(["campaign", "assign-list", campaign_id, list_id]) == 0
    assert capsys.readouterr().out == f"{list_id}\n0 leads added\n"
    assert main(["agent", "disable", agent_id]) == 0
    assert capsys.readouterr().out == f"disabled {agent_id}\n"
    assert main(["agent", "list"]) == 0
    assert agent_id not in capsys.readouterr().out
    assert main(["changes", "agent", agent_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and '"actor": "cli:' in lines[0] and '"action": "disable"' in lines[1]


async def test_a_token_made_on_the_command_line_is_audited_and_revocable(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIALER_CONFIG", "")
    monkeypatch.setenv("DIALER_PG_DSN", pg_dsn)
    assert await asyncio.to_thread(main, ["token", "create", "--role", "crm", "--label", "cli test"]) == 0
    token_id = capsys.readouterr().out.split('"token_id": "')[1].split('"')[0]
    assert await asyncio.to_thread(main, ["token", "revoke", token_id]) == 0
    assert await asyncio.to_thread(main, ["token", "revoke", token_id]) == 1
    assert "No live token" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["changes", "token", token_id]) == 0
    actions = [line.split('"action": "')[1].split('"')[0] for line in capsys.readouterr().out.splitlines()]
    assert actions == ["create", "revoke"]


async def test_a_caller_id_the_agency_did_not_vouch_for_is_refused_with_the_checks_own_reason(
        pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    """The admin API answers what `POST /v1/campaigns/{id}/start` would: the caller-ID check's
    machine-readable reason, not a generic code."""
    vouched = [CallerIdRecord("+12125550100", "Acme Insurance LLC", "Jane Smith, compliance", dt.date(2026, 3, 1)),
               CallerIdRecord("+12125550111", "Acme Insurance LLC", "", None)]

    def check(number: str) -> Any:
        return check_caller_id(number, vouched, require_vouched=True, today=dt.date(2026, 11, 29))

    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state", caller_id_check=check) as api:
        admin = await api.token(TokenRole.ADMIN)
        campaign_id = _id("c")
        status, body = await _post(api, admin, "/v1/campaigns",
                                   {"campaign_id": campaign_id, "name": "C", "caller_id": "+13125550100"})
        assert status == 422 and body["error"] == "caller_id_not_vouched" and body["field"] == "caller_id", body
        status, body = await _post(api, admin, "/v1/campaigns",
                                   {"campaign_id": campaign_id, "name": "C", "caller_id": "+12125550111"})
        assert status == 422 and body["error"] == "caller_id_vouching_incomplete", body
        status, body = await _post(api, admin, "/v1/campaigns",
                                   {"campaign_id": campaign_id, "name": "C", "caller_id": "+12125550100"})
        assert status == 201, body
        status, body = await _post(api, admin, f"/v1/campaigns/{campaign_id}/settings",
                                   {"caller_id": "+13125550100"}, "PATCH")
        assert status == 422 and body["error"] == "caller_id_not_vouched", body
