"""The SIP credentials a signed-in agent's page is given register that agent's browser phone and
no other agent's (the real Asterisk decides, in a real Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.provision.asterisk import AsteriskInstance
from dialer.provision.credentials import SipLogin
from dialer.web.users import UserRole, UserStore
from tests.api.conftest import open_api
from tests.browser.phone import BrowserPhone

PASSWORD = "a signed-in agent"


@pytest.mark.timeout(90)
async def test_an_agents_page_credentials_register_as_that_agent_only(
    asterisk: AsteriskInstance, pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path, phone: BrowserPhone
) -> None:
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state",
                        sip_credentials_file=asterisk.credentials_file) as api:
        await api.outbox.put_many([
            ("agent_upsert", {"agent_id": api.agent_id, "name": "Ann Agent", "sip_endpoint": "agent1004-web"}),
            ("agent_upsert", {"agent_id": api.other_agent_id, "name": "Bob Agent", "sip_endpoint": "agent1005-web"}),
        ])
        assert await api.outbox.flush(10)
        username = f"ann-{api.agent_id}"
        await UserStore(api.store).create(username, UserRole.AGENT, PASSWORD, agent_id=api.agent_id)
        signed_in = await api.client.post("/v1/sessions", json={"username": username, "password": PASSWORD})
        assert signed_in.status == 201
        answer = await api.client.get("/v1/session/sip")
        assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
        given = await answer.json()
        assert given["endpoint"] == "agent1004-web"
        bob = asterisk.sip_credentials("agent1005-web")

    # Ann's credential on Bob's endpoint: refused, whichever name it claims.
    await phone.start(SipLogin("agent1005-web", given["username"], given["password"], bob.sip_uri, bob.ws_url, None))
    status = await phone.wait_for("registration", "failed", "registered")
    assert status["registration"] == "failed" and status["lastError"].startswith(("401", "403")), status
    await phone.start(SipLogin("agent1005-web", "agent1005-web", given["password"], bob.sip_uri, bob.ws_url, None))
    assert (await phone.wait_for("registration", "failed", "registered"))["registration"] == "failed"
    # ... and on Ann's own endpoint it registers.
    await phone.start(SipLogin(given["endpoint"], given["username"], given["password"], given["sip_uri"],
                               given["ws_url"], None))
    assert (await phone.wait_for("registration", "failed", "registered"))["registration"] == "registered"
