"""`GET /v1/calls/{id}/callback-times` (the console's callback picker) and the disposition
route's refusal of a callback the gate would block: the gate's own calling windows for the lead
(here Rhode Island: Mon-Fri 9-18, Sat 10-17, no Sundays, no holidays)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.api.conftest import Api, open_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
NEW_YORK = ZoneInfo("America/New_York")


async def _ri_call(api: Api) -> str:
    suffix = uuid.uuid4().hex[:8]
    lead_id, call_id = f"lead-ri-{suffix}", f"call-ri-{suffix}"
    await api.outbox.put_many([
        ("lead_upsert", {"lead_id": lead_id, "first_name": "Rhoda", "phones": ["+14012740177"], "state": "RI",
                         "zip": "02903"}),
        ("call", {"call_id": call_id, "version": 1, "direction": "outbound", "lead_id": lead_id,
                  "agent_id": api.agent_id, "lead_number": "+14012740177", "requested_at": datetime.now(UTC),
                  "ended_at": datetime.now(UTC), "outcome": "answered"}),
    ])
    assert await api.outbox.flush(10)
    return call_id


async def test_the_picker_gets_only_the_times_the_gate_allows(api: Api) -> None:
    call_id = await _ri_call(api)
    path = f"/v1/calls/{call_id}/callback-times"
    response = await api.client.get(path, params={"date": "2030-12-09"}, headers=api.auth(api.agent))  # a Monday
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["date"] == "2030-12-09" and body["zones"] == ["America/New_York"]
    local = [datetime.fromisoformat(at).astimezone(NEW_YORK).strftime("%H:%M") for at in body["times"]]
    assert local[0] == "09:00" and local[-1] == "17:30" and len(local) == 18
    for day in ("2030-12-08", "2030-12-25"):  # a Sunday; Christmas
        response = await api.client.get(path, params={"date": day}, headers=api.auth(api.agent))
        assert (await response.json())["times"] == []
    # Another agent's call is not there for this agent; a bad date is a named 4xx.
    response = await api.client.get(path, headers=api.auth(api.other_agent))
    assert response.status == 404
    response = await api.client.get(path, params={"date": "monday"}, headers=api.auth(api.agent))
    assert response.status in (400, 422) and (await response.json())["field"] == "date"


async def test_a_callback_the_gate_would_block_is_refused_and_one_it_allows_is_kept(api: Api) -> None:
    call_id = await _ri_call(api)
    path = f"/v1/calls/{call_id}/disposition"
    sunday = datetime(2030, 12, 8, 11, 0, tzinfo=NEW_YORK).isoformat()
    response = await api.client.post(path, json={"code": "callback", "callback_at": sunday},
                                     headers=api.auth(api.agent))
    assert response.status == 422
    problem = await response.json()
    assert problem["error"] == "callback_outside_window" and problem["field"] == "callback_at"
    assert "RI" in problem["detail"]
    monday = datetime(2030, 12, 9, 11, 0, tzinfo=NEW_YORK).isoformat()
    response = await api.client.post(path, json={"code": "callback", "callback_at": monday},
                                     headers={**api.auth(api.agent), "Idempotency-Key": uuid.uuid4().hex})
    assert response.status == 202, await response.text()


async def test_the_times_come_from_the_rulebook_the_routes_are_handed(pg_dsn: str, redis_url: str,
                                                                      redis_prefix: str, tmp_path: Path) -> None:
    """No private copy of the rule data: without the gate's rulebook (it failed to load) the
    picker and a callback disposition fail closed with a named 503, not with times of their own."""
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state", rulebook=None) as api:
        call_id = await _ri_call(api)
        response = await api.client.get(f"/v1/calls/{call_id}/callback-times", params={"date": "2030-12-09"},
                                        headers=api.auth(api.agent))
        assert response.status == 503 and (await response.json())["error"] == "rules_unavailable"
        monday = datetime(2030, 12, 9, 11, 0, tzinfo=NEW_YORK).isoformat()
        response = await api.client.post(f"/v1/calls/{call_id}/disposition",
                                         json={"code": "callback", "callback_at": monday},
                                         headers={**api.auth(api.agent), "Idempotency-Key": uuid.uuid4().hex})
        assert response.status == 503 and (await response.json())["error"] == "rules_unavailable"
