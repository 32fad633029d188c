"""What an outside-in check of the API found (a CRM integrator's and an agency admin's mistakes),
each now a clear 4xx naming the field instead of a 500 or a silent acceptance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_bridge.store import TokenRole
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _send(api: Api, method: str, path: str, token: str, body: dict[str, Any] | None = None,
                ) -> tuple[int, dict[str, Any]]:
    response = await api.client.request(method, path, json=body, headers=api.auth(token))
    return response.status, await response.json()


@pytest.mark.parametrize("when", [
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: OverflowError in the calling-window rules (was a 500)
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "1850-06-01T15:00:00Z",
])
async def test_a_callback_time_out_of_any_calendar_is_refused_naming_the_field(api: Api, when: str) -> None:
    got, body = await _send(api, "POST", f"/v1/calls/{api.call_id}/disposition", api.crm,
                            {"code": "callback", "callback_at": when})
    assert (got, body["error"], body["field"]) == (422, "invalid_field", "callback_at"), body


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
async def test_callback_times_of_a_day_at_the_calendars_ends_are_refused(api: Api, day: str) -> None:
    got, body = await _send(api, "GET", f"/v1/calls/{api.call_id}/callback-times?date={day}", api.crm)
    assert (got, body["error"], body["field"]) == (422, "invalid_field", "date"), body


async def test_an_unknown_nested_field_is_named_whole(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    got, body = await _send(api, "POST", "/v1/campaigns", admin, {
        "campaign_id": "qa-nested", "name": "Nested", "caller_id": "+12125550100", "seller_name": "Acme",
        "dnc_callback_number": "+12125550100", "amd_settings": {"greting_ms": 1500}})
    assert (got, body["error"], body["field"]) == (422, "unknown_field", "amd_settings"), body
    assert "amd_settings.greting_ms" in body["detail"]


@pytest.mark.parametrize(("url", "words"), [
    ("https://crm.exa mple.com/hooks", "spaces"),
    ("https://crm.example.com/ho\toks", "spaces"),
    ("https://crm.example.com:99999/hooks", "port"),
    ("https://crm.example.com:0/hooks", "port"),
])
async def test_a_webhook_url_that_can_never_be_delivered_to_is_refused(api: Api, url: str, words: str) -> None:
    admin = await api.token(TokenRole.ADMIN)
    got, body = await _send(api, "POST", "/v1/webhooks", admin, {"url": url, "event_types": ["call.ended"]})
    assert (got, body["error"], body["field"]) == (422, "invalid_field", "url"), body
    assert words in body["detail"]


async def test_a_webhook_replay_with_the_times_swapped_is_refused(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    got, created = await _send(api, "POST", "/v1/webhooks", admin,
                               {"url": "https://crm.example.com:8443/hooks", "event_types": ["call.ended"]})
    assert got == 201, created
    path = f"/v1/webhooks/{created['subscription_id']}/replay"
    got, body = await _send(api, "POST", path, admin, {"since": "2026-11-24T00:00:00Z", "until": "2026-11-01T00:00:00Z"})
    assert (got, body["error"], body["field"]) == (422, "invalid_field", "until"), body
    got, body = await _send(api, "POST", path, admin, {"since": "2026-11-01T00:00:00Z", "until": "2026-11-24T00:00:00Z"})
    assert got == 202, body


async def test_a_lead_stored_with_a_far_callback_is_still_shown(api: Api) -> None:
    # Rows written before times were bounded (a callback in 9999) are answered, not a 500.
    phone = "+16055550177"
    await api.outbox.put_many([("lead_upsert", {
        "lead_id": f"lead-far-{api.call_id}", "first_name": "Far", "phones": [phone],
        "callback_at": datetime(9999, 12, 31, 23, 0, tzinfo=UTC)})])
    assert await api.outbox.flush(10)
    got, body = await _send(api, "GET", "/v1/leads?name=far&phone=(605)%20555-0177", api.crm)
    assert got == 200, body
    assert [lead["callback_at"] for lead in body["leads"]] == ["9999-12-31T23:00:00Z"]


@pytest.mark.parametrize(("state", "status"), [("ZZ", 422), ("XX", 422), ("dc", 201), ("PR", 201)])
async def test_a_web_leads_state_is_a_us_state_as_in_the_csv_import(api: Api, state: str, status: int) -> None:
    phone = {"ZZ": "+16055550161", "XX": "+16055550162", "dc": "+16055550163", "PR": "+16055550164"}[state]
    got, body = await _send(api, "POST", "/v1/leads", api.crm,
                            {"first_name": "Ann", "phone": f" {phone} ", "state": state, "source": "web_form"})
    assert got == status, body
    if status == 422:
        assert (body["error"], body["field"]) == ("invalid_field", "state")
    else:
        assert await api.outbox.flush(10)
        lead = await api.store.get_lead(body["lead_id"])
        assert lead is not None and lead.state == state.upper() and list(lead.phones) == [phone]


async def test_a_premium_rate_number_is_no_web_lead_as_it_is_no_imported_one(api: Api) -> None:
    got, body = await _send(api, "POST", "/v1/leads", api.crm,
                            {"first_name": "Ann", "phone": "+1 900 555 0104", "source": "web_form"})
    assert (got, body["error"], body["field"]) == (422, "invalid_field", "phone"), body
    assert "PREMIUM_RATE" in body["detail"]


async def test_a_refused_role_is_named_in_plain_english(api: Api) -> None:
    got, body = await _send(api, "GET", "/v1/webhooks", api.agent)
    assert (got, body["error"], body["detail"]) == (403, "forbidden", "an agent token may not call this endpoint")


@pytest.mark.parametrize("authorization", [None, "Basic YTpi", "Bearer dlr_unknown"])
async def test_a_401_names_the_bearer_scheme(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.client.get("/v1/calls", headers=headers)
    assert response.status == 401 and (await response.json())["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="dialer"'


async def test_only_an_agent_token_speaks_for_an_agent(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    got, body = await _send(api, "POST", "/v1/tokens", admin, {"role": "crm", "agent_id": api.agent_id})
    assert (got, body["error"], body["field"]) == (422, "invalid_field", "agent_id"), body
    got, body = await _send(api, "POST", "/v1/tokens", admin, {"role": "agent", "agent_id": api.agent_id})
    assert got == 201 and body["agent_id"] == api.agent_id, body


async def test_a_body_that_cannot_be_read_does_not_use_up_its_idempotency_key(api: Api) -> None:
    # docs/api.md: what fails the request's schema is not kept, so the corrected retry runs.
    headers = {**api.auth(api.crm), "Idempotency-Key": f"qa-unread-{api.call_id}"}
    first = await api.client.post("/v1/calls", json={"lead_id": api.lead_id}, headers=headers)
    assert first.status == 422 and (await first.json())["field"] == "agent_id"
    lead = {"first_name": "Ann", "phone": "+16055550171", "source": "web_form"}
    response = await api.client.post("/v1/leads", json={**lead, "zip": 60601}, headers=headers)
    assert response.status == 422
    response = await api.client.post("/v1/leads", json=lead, headers=headers)
    assert response.status == 201 and "Idempotent-Replayed" not in response.headers
    again = await api.client.post("/v1/leads", json=lead, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"


async def test_a_callback_in_the_past_is_refused(api: Api) -> None:
    # A CRM that sends local time as UTC, or last year's date: never accepted and then dialed at once.
    got, body = await _send(api, "POST", f"/v1/calls/{api.call_id}/disposition", api.crm,
                            {"code": "callback", "callback_at": "2020-12-01T15:00:00Z"})
    assert (got, body["error"], body["field"]) == (422, "callback_in_past", "callback_at"), body


async def test_a_lead_search_with_spaces_around_its_words_finds_the_lead(api: Api) -> None:
    got, created = await _send(api, "POST", "/v1/leads", api.crm, {
        "first_name": "Quinn", "last_name": "Spacey", "email": "quinn.spacey@example.com", "phone": "+16055550172",
        "source": "web_form"})
    assert got == 201, created
    assert await api.outbox.flush(10)
    for query in ("name=%20quinn%20spacey%20", "email=%20Quinn.Spacey@example.com%20"):
        got, body = await _send(api, "GET", f"/v1/leads?{query}", api.crm)
        assert got == 200 and [lead["lead_id"] for lead in body["leads"]] == [created["lead_id"]], (query, body)
    got, body = await _send(api, "GET", "/v1/leads?name=%20%20", api.crm)
    assert (got, body["field"]) == (422, "name"), body


async def test_a_retry_that_writes_the_phone_another_way_is_the_same_request(api: Api) -> None:
    # A CRM that formats the number differently on its retry (or the e-mail's case): the intake reads
    # both as the same lead, so the key is not "reused", the first answer is replayed.
    headers = {**api.auth(api.crm), "Idempotency-Key": f"qa-spelling-{api.call_id}"}
    lead = {"first_name": "Ann", "phone": "(605) 555-0181", "email": "Ann.Spelling@Example.com", "source": "web_form"}
    first = await api.client.post("/v1/leads", json=lead, headers=headers)
    assert first.status == 201, await first.json()
    for spelling in ({"phone": "+16055550181"}, {"phone": "605.555.0181", "email": "ann.spelling@example.com"},
                     {"phone": " +1 (605) 555-0181 "}):
        again = await api.client.post("/v1/leads", json={**lead, **spelling}, headers=headers)
        assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true", spelling
        assert (await again.json())["lead_id"] == (await first.json())["lead_id"]
    other = await api.client.post("/v1/leads", json={**lead, "phone": "+16055550182"}, headers=headers)
    assert (other.status, (await other.json())["error"]) == (422, "idempotency_key_reused")

    # Every body with a phone number (`PhoneText`): an opt-out too.
    headers = {**api.auth(api.crm), "Idempotency-Key": f"qa-spelling-opt-{api.call_id}"}
    first = await api.client.post("/v1/opt-outs", json={"phone": "(605) 555-0183", "source": "api"}, headers=headers)
    assert first.status == 201, await first.json()
    again = await api.client.post("/v1/opt-outs", json={"phone": "+16055550183", "source": "api"}, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    # The QA's own example: no dialable number either way, the kept refusal is replayed.
    headers = {**api.auth(api.crm), "Idempotency-Key": f"qa-spelling-bad-{api.call_id}"}
    first = await api.client.post("/v1/opt-outs", json={"phone": "(555) 201-0001", "source": "api"}, headers=headers)
    assert first.status == 422, await first.json()
    again = await api.client.post("/v1/opt-outs", json={"phone": "+15552010001", "source": "api"}, headers=headers)
    assert again.status == 422 and again.headers.get("Idempotent-Replayed") == "true", await again.json()


async def test_disabling_a_disabled_agent_changes_and_audits_nothing(api: Api) -> None:
    admin = await api.token(TokenRole.ADMIN)
    agent_id = f"qa-twice-{api.call_id}"
    got, created = await _send(api, "POST", "/v1/agents", admin, {"agent_id": agent_id, "name": "Twice"})
    assert got == 201, created
    got, disabled = await _send(api, "POST", f"/v1/agents/{agent_id}/disable", admin)
    assert (got, disabled["active"]) == (200, False), disabled
    got, again = await _send(api, "POST", f"/v1/agents/{agent_id}/disable", admin)
    assert (got, again) == (200, disabled)  # the current state, not even updated_at moved
    got, enabled = await _send(api, "POST", f"/v1/agents/{agent_id}/enable", admin)
    assert (got, enabled["active"]) == (200, True), enabled
    got, again = await _send(api, "POST", f"/v1/agents/{agent_id}/enable", admin)
    assert (got, again) == (200, enabled)
    got, same = await _send(api, "PATCH", f"/v1/agents/{agent_id}", admin, {"name": "Twice", "active": True})
    assert (got, same["updated_at"]) == (200, enabled["updated_at"]), same
    got, body = await _send(api, "GET", f"/v1/admin-changes?entity=agent&entity_id={agent_id}", admin)
    assert [change["action"] for change in body["changes"]] == ["create", "disable", "enable"], body
    got, body = await _send(api, "POST", "/v1/agents/nobody-here/enable", admin)
    assert (got, body["error"]) == (404, "agent_not_found")


async def test_an_agents_endpoint_that_asterisk_cannot_be_asked_about_is_taken_with_a_warning(api: Api) -> None:
    # This API app has no Asterisk (as when it is down): the agent is created, and the admin told.
    admin = await api.token(TokenRole.ADMIN)
    got, body = await _send(api, "POST", "/v1/agents", admin,
                            {"agent_id": f"qa-warn-{api.call_id}", "name": "Warn", "sip_endpoint": "agent1001"})
    assert got == 201 and body["warnings"] == [
        "Asterisk could not be asked whether PJSIP/agent1001 exists: check it before the agent logs in"], body
    got, body = await _send(api, "POST", "/v1/agents", admin, {
        "agent_id": f"qa-sim-{api.call_id}", "name": "Sim", "sip_endpoint": "Local/sim1@agent-sim"})
    assert (got, body["warnings"]) == (201, []), body


@pytest.mark.parametrize(("phone", "state"), [("(787) 234-5678", "PR"), ("+1 340 773 1234", "VI"),
                                              ("671-632-1234", "GU"), ("(670) 234-1234", "MP"),
                                              ("684-633-1234", "AS")])
async def test_a_lead_in_a_us_territory_is_a_us_lead(api: Api, phone: str, state: str) -> None:
    # Was 422 "not a US number (region PR)" though PR was accepted as the lead's state.
    got, body = await _send(api, "POST", "/v1/leads", api.crm,
                            {"first_name": "Ana", "phone": phone, "state": state, "source": "web_form"})
    assert got in (200, 201), body
    assert await api.outbox.flush(10)
    lead = await api.store.get_lead(body["lead_id"])
    assert lead is not None and "+1" + "".join(c for c in phone if c.isdigit())[-10:] in lead.phones
