"""Sign-in for people (dialer/web/sessions.py, users.py) against the real PostgreSQL: session
cookies, CSRF, throttling, signing out everywhere, agents limited to their own work, and SIP
credentials handed only to a signed-in agent's page."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import TokenRole
from dialer.api import events
from dialer.api.http import SESSION_COOKIE
from dialer.web.users import MAX_FAILURES, UserRole, UserStore, hash_secret
from tests.api.conftest import Api, open_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
PASSWORD = "correct horse battery"


@dataclass
class Signed:
    secret: str
    csrf: str

    def headers(self, *, csrf: bool = True) -> dict[str, str]:
        headers = {"Cookie": f"{SESSION_COOKIE}={self.secret}"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers


@dataclass
class People:
    api: Api
    users: UserStore
    ann: str  # user names: ann is api.agent_id's account, bob the other agent's, sue a supervisor
    bob: str
    sue: str

    async def sign_in(self, username: str, password: str = PASSWORD) -> Signed:
        response = await self.api.client.post("/v1/sessions", json={"username": username, "password": password})
        assert response.status == 201, await response.text()
        cookie = response.cookies[SESSION_COOKIE]
        body = await response.json()
        self.api.client.session.cookie_jar.clear()  # each test names its session explicitly
        return Signed(cookie.value, body["csrf_token"])


@pytest.fixture
async def people(pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[People]:
    async with open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state",
                        sip_credentials_file=tmp_path / "sip-credentials.json") as api:
        users = UserStore(api.store)
        suffix = api.agent_id.rpartition("-")[2]
        ann, bob, sue = f"ann{suffix}", f"bob{suffix}", f"sue{suffix}"
        await users.create(ann, UserRole.AGENT, PASSWORD, agent_id=api.agent_id)
        await users.create(bob, UserRole.AGENT, PASSWORD, agent_id=api.other_agent_id)
        await users.create(sue, UserRole.SUPERVISOR, PASSWORD)
        yield People(api, users, ann, bob, sue)


async def test_a_session_cookie_is_httponly_strict_and_the_page_gets_its_csrf_token(people: People) -> None:
    client = people.api.client
    response = await client.post("/v1/sessions", json={"username": people.ann, "password": PASSWORD})
    assert response.status == 201
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    assert "Secure" not in header  # plain HTTP on 127.0.0.1 (Secure is set over HTTPS)
    body = await response.json()
    assert body["role"] == "agent" and body["agent_id"] == people.api.agent_id and body["csrf_token"]
    assert "password" not in json.dumps(body)
    session = await client.get("/v1/session")
    assert session.status == 200 and (await session.json())["csrf_token"] == body["csrf_token"]
    # The hash in the table is argon2id, never the password.
    connection = await asyncpg.connect(people.api.pg_dsn)
    try:
        stored = await connection.fetchval("SELECT password_hash FROM users WHERE username = $1", people.ann)
    finally:
        await connection.close()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_pages_without_a_session_redirect_to_sign_in(people: People) -> None:
    client = people.api.client
    for path in ("/agent", "/"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"].startswith("/signin?next=")
    response = await client.get("/agent", allow_redirects=False, headers={"Cookie": f"{SESSION_COOKIE}=forged"})
    assert response.status == 302
    sign_in = await client.get("/signin")
    assert sign_in.status == 200 and "Content-Security-Policy" in sign_in.headers
    ann = await people.sign_in(people.ann)
    page = await client.get("/agent", allow_redirects=False, headers=ann.headers())
    assert page.status == 200 and "<html" in await page.text()
    # The API without a session or token: 401 (a problem, not a redirect).
    assert (await client.get("/v1/session")).status == 401


async def test_state_changing_requests_need_the_csrf_token(people: People) -> None:
    client, api = people.api.client, people.api
    ann = await people.sign_in(people.ann)
    body = {"code": "not_interested"}
    missing = await client.post(f"/v1/calls/{api.call_id}/disposition", json=body, headers=ann.headers(csrf=False))
    assert missing.status == 403 and (await missing.json())["error"] == "csrf_failed"
    wrong = await client.post(f"/v1/calls/{api.call_id}/disposition", json=body,
                              headers={**ann.headers(csrf=False), "X-CSRF-Token": "guess"})
    assert wrong.status == 403
    foreign = await client.post(f"/v1/calls/{api.call_id}/disposition", json=body,
                                headers={**ann.headers(), "Origin": "https://evil.example"})
    assert foreign.status == 403 and (await foreign.json())["error"] == "csrf_failed"
    signed_out = await client.delete("/v1/session", headers=ann.headers(csrf=False))
    assert signed_out.status == 403
    done = await client.post(f"/v1/calls/{api.call_id}/disposition", json=body, headers=ann.headers())
    assert done.status == 202, await done.text()
    # Reading needs no CSRF token.
    assert (await client.get(f"/v1/calls/{api.call_id}", headers=ann.headers(csrf=False))).status == 200


async def test_an_agent_sees_only_its_own_calls_leads_and_no_recordings(people: People) -> None:
    client, api = people.api.client, people.api
    bob = await people.sign_in(people.bob)
    other_call = await client.get(f"/v1/calls/{api.call_id}", headers=bob.headers())
    assert other_call.status == 404
    assert (await client.get(f"/v1/calls?agent_id={api.agent_id}", headers=bob.headers())).status == 403
    assert (await (await client.get("/v1/calls", headers=bob.headers())).json())["calls"] == []
    assert (await client.get(f"/v1/leads/{api.lead_id}", headers=bob.headers())).status == 404
    assert (await (await client.get("/v1/leads?name=Dana", headers=bob.headers())).json())["leads"] == []
    assert (await client.get("/v1/recordings", headers=bob.headers())).status == 403
    assert (await client.get(f"/v1/calls/{api.call_id}/dispositions", headers=bob.headers())).status == 404
    events = await client.get(f"/v1/agents/{api.agent_id}/events", headers=bob.headers())
    assert events.status == 403
    ann = await people.sign_in(people.ann)
    assert (await client.get(f"/v1/calls/{api.call_id}", headers=ann.headers())).status == 200
    assert (await client.get(f"/v1/leads/{api.lead_id}", headers=ann.headers())).status == 200
    sue = await people.sign_in(people.sue)
    assert (await client.get(f"/v1/calls/{api.call_id}", headers=sue.headers())).status == 200


async def test_ten_wrong_passwords_throttle_the_user_name(people: People) -> None:
    client = people.api.client
    for _ in range(MAX_FAILURES):
        wrong = await client.post("/v1/sessions", json={"username": people.bob, "password": "wrong password!"})
        assert wrong.status == 401 and (await wrong.json())["error"] == "sign_in_failed"
    throttled = await client.post("/v1/sessions", json={"username": people.bob, "password": PASSWORD})
    assert throttled.status == 429 and (await throttled.json())["error"] == "sign_in_throttled"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 15 * 60
    # Other people are not throttled; an admin's new password lifts it.
    await people.sign_in(people.ann)
    await people.users.set_password(people.bob, "another good password")
    await people.sign_in(people.bob, "another good password")
    # An unknown name answers as a wrong password does (names are not revealed).
    unknown = await client.post("/v1/sessions", json={"username": "nobody-here", "password": PASSWORD})
    assert unknown.status == 401 and (await unknown.json())["error"] == "sign_in_failed"
    form = await client.post("/v1/sessions", data={"username": people.ann, "password": PASSWORD})
    assert form.status == 400  # an HTML form on another site cannot sign anyone in
    # ... nor a text/plain form shaped as JSON (browsers send that cross-site without asking)
    plain = await client.post("/v1/sessions", data=json.dumps({"username": people.ann, "password": PASSWORD}),
                              headers={"Content-Type": "text/plain"})
    assert plain.status == 415


async def test_sign_out_everywhere_disable_and_new_password_end_sessions(people: People) -> None:
    client = people.api.client
    first, second = await people.sign_in(people.ann), await people.sign_in(people.ann)
    assert (await client.get("/v1/session", headers=second.headers())).status == 200
    ended = await client.post("/v1/session/sign-out-everywhere", json={}, headers=first.headers())
    assert ended.status == 200 and (await ended.json())["sessions_ended"] == 2
    for session in (first, second):
        assert (await client.get("/v1/session", headers=session.headers())).status == 401
    third = await people.sign_in(people.ann)
    signed_out = await client.delete("/v1/session", headers=third.headers())
    assert signed_out.status == 200
    assert (await client.get("/v1/session", headers=third.headers())).status == 401
    fourth = await people.sign_in(people.ann)
    await people.users.disable(people.ann)
    assert (await client.get("/v1/session", headers=fourth.headers())).status == 401
    refused = await client.post("/v1/sessions", json={"username": people.ann, "password": PASSWORD})
    assert refused.status == 401


async def test_ended_sessions_and_old_wrong_passwords_are_purged_a_live_one_never(people: People) -> None:
    """`dialer serve` purges hourly: sessions ended (expired or signed out) over a week ago, and
    wrong passwords out of the throttling window; a live session and a recent end stay."""
    live, recent, signed_out, expired = [await people.sign_in(people.ann) for _ in range(4)]
    conn = await asyncpg.connect(people.api.pg_dsn)
    try:
        async def session_id(signed: Signed) -> str:
            return str(await conn.fetchval("SELECT session_id FROM user_sessions WHERE secret_hash = $1",
                                           hash_secret(signed.secret)))

        ids = {name: await session_id(signed) for name, signed in
               (("live", live), ("recent", recent), ("signed_out", signed_out), ("expired", expired))}
        await conn.execute("UPDATE user_sessions SET revoked_at = now() - interval '1 day' WHERE session_id = $1",
                           ids["recent"])
        await conn.execute("UPDATE user_sessions SET revoked_at = now() - interval '8 days' WHERE session_id = $1",
                           ids["signed_out"])
        await conn.execute("UPDATE user_sessions SET created_at = now() - interval '9 days', "
                           "expires_at = now() - interval '8 days' WHERE session_id = $1", ids["expired"])
        name = f"nobody{people.ann}"
        await conn.execute("INSERT INTO login_failures (username, failed_at) VALUES ($1, now() - interval '1 hour'), "
                           "($1, now())", name)
        sessions, failures = await people.users.purge()
        assert sessions >= 2 and failures >= 1
        left = {row["session_id"] for row in await conn.fetch(
            "SELECT session_id FROM user_sessions WHERE session_id = ANY($1::text[])", list(ids.values()))}
        assert left == {ids["live"], ids["recent"]}
        assert await conn.fetchval("SELECT count(*) FROM login_failures WHERE username = $1", name) == 1
    finally:
        await conn.close()
    assert (await people.api.client.get("/v1/session", headers=live.headers())).status == 200


async def test_sip_credentials_go_only_to_the_signed_in_agents_page(people: People, tmp_path: Path) -> None:
    client, api = people.api.client, people.api
    credentials = tmp_path / "sip-credentials.json"  # the file the fixture's app reads
    credentials.write_text(json.dumps({
        "version": 1, "realm": "dialer", "sip_domain": "127.0.0.1", "udp_port": 5060, "ws_url": "ws://127.0.0.1:8088/ws",
        "endpoints": {f"{agent}-web": {"role": "agent", "kind": "webrtc", "password": f"secret-of-{agent}"}
                      for agent in (api.agent_id, api.other_agent_id)},
    }))
    token = await api.token(TokenRole.AGENT, api.agent_id)
    by_token = await client.get("/v1/session/sip", headers=api.auth(token))
    assert by_token.status == 403 and (await by_token.json())["error"] == "not_signed_in"
    ann, bob, sue = [await people.sign_in(name) for name in (people.ann, people.bob, people.sue)]
    ann_login = await (await client.get("/v1/session/sip", headers=ann.headers())).json()
    bob_login = await (await client.get("/v1/session/sip", headers=bob.headers())).json()
    assert ann_login["endpoint"] == f"{api.agent_id}-web" and ann_login["password"] == f"secret-of-{api.agent_id}"
    assert bob_login["username"] == f"{api.other_agent_id}-web" and bob_login["password"] != ann_login["password"]
    assert (await client.get("/v1/session/sip", headers=sue.headers())).status == 403


def test_the_user_command_creates_lists_resets_and_disables(
        people: People, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.cli import main

    monkeypatch.setenv("DIALER_PG_DSN", people.api.pg_dsn)
    name = f"cli{people.ann}"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "create", name, "--role", "admin", "--password-stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["user", "create", name, "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    # Exit 1 when refused (exists, not found), 2 for an invalid value: as every admin command.
    assert main(["user", "create", f"x{name}", "--role", "agent", "--agent-id", "no-such-agent",
                 "--password-stdin"]) == 1
    assert "No agent 'no-such-agent'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["user", "create", name, "--role", "admin", "--password-stdin"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["user", "disable", f"no-such-{name}"]) == 1
    assert "No user" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a new long password\n"))
    assert main(["user", "passwd", name, "--password-stdin"]) == 0
    assert main(["user", "disable", name]) == 0
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [name, "admin", "-", "disabled"] in listed and [people.ann, "agent", people.api.agent_id, "active"] in listed


async def test_an_inbound_callers_details_fill_only_blank_fields_of_the_agents_own_call(people: People) -> None:
    client, api = people.api.client, people.api
    ann, bob = await people.sign_in(people.ann), await people.sign_in(people.bob)
    outbound = await client.post(f"/v1/calls/{api.call_id}/caller", json={"first_name": "X"}, headers=ann.headers())
    assert outbound.status == 409 and (await outbound.json())["error"] == "not_inbound"
    inbound_id = f"cmp-in-{api.call_id}"
    await api.outbox.put("call", {"call_id": inbound_id, "version": 1, "direction": "inbound", "lead_id": api.lead_id,
                                  "agent_id": api.agent_id, "lead_number": api.phone, "requested_at": datetime.now(UTC)})
    assert await api.outbox.flush(10)
    other = await client.post(f"/v1/calls/{inbound_id}/caller", json={"first_name": "X"}, headers=bob.headers())
    assert other.status == 404
    bad = await client.post(f"/v1/calls/{inbound_id}/caller", json={"first_name": "X", "zip": "nope"},
                            headers=ann.headers())
    assert bad.status == 422 and (await bad.json())["field"] == "zip"
    done = await client.post(f"/v1/calls/{inbound_id}/caller", headers=ann.headers(),
                             json={"first_name": "Someone Else", "email": "Dana@Example.com", "state": "ny"})
    assert done.status == 202, await done.text()
    assert (await done.json())["filled"] == ["email"]  # the name and state the CRM had are kept
    assert await api.outbox.flush(10)
    lead = await api.store.get_lead(api.lead_id)
    assert lead is not None and (lead.first_name, lead.email, lead.state) == ("Dana", "dana@example.com", "NY")


async def test_a_signed_in_page_keeps_working_through_a_short_postgresql_outage(
    pg_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path,
) -> None:
    from tests.support.fault_proxy import FaultProxy

    async with (
        FaultProxy("127.0.0.1", 5432) as proxy,
        open_api(pg_dsn, redis_url, redis_prefix, tmp_path / "state", store_dsn=proxy.rewrite_dsn(pg_dsn)) as api,
    ):
        users = UserStore(api.store)
        name = f"ann{api.agent_id.rpartition('-')[2]}"
        await users.create(name, UserRole.AGENT, PASSWORD, agent_id=api.agent_id)
        people = People(api, users, name, name, name)
        ann = await people.sign_in(name)
        stranger = Signed("not-a-session-anyone-holds", "x")
        assert (await api.client.get("/v1/session", headers=ann.headers())).status == 200

        proxy.down()
        # The session this process resolved a moment ago still works; one it never saw cannot be
        # checked (503, not a sign-in page: it may be good).
        assert (await api.client.get("/v1/session", headers=ann.headers())).status == 200
        assert (await api.client.get(f"/v1/calls/{api.call_id}", headers=ann.headers())).status in (200, 503)
        assert (await api.client.get("/v1/session", headers=stranger.headers())).status == 503
        proxy.restore()

        session = None
        for _ in range(100):  # the pool's cut connections are replaced once PostgreSQL answers again
            try:
                session = await users.session(ann.secret)
                break
            except DatabaseUnavailable:
                await asyncio.sleep(0.2)
        assert session is not None
        await users.sign_out_everywhere(session.user.user_id)
        assert (await api.client.get("/v1/session", headers=ann.headers())).status == 401  # at once, database up


async def test_an_open_event_stream_ends_when_its_session_does(people: People,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A console tab left open must stop receiving screen pops and the wallboard once its person
    signed out (here, or everywhere from another tab); a bearer token's stream is not affected."""
    monkeypatch.setattr(events, "SESSION_CHECK_SECONDS", 0.2)
    client = people.api.client
    ann, sue = await people.sign_in(people.ann), await people.sign_in(people.sue)
    agent_stream = await client.ws_connect(f"/v1/agents/{people.api.agent_id}/events", headers=ann.headers(csrf=False))
    wallboard = await client.ws_connect("/v1/events", headers=sue.headers(csrf=False))
    token_stream = await client.ws_connect(f"/v1/agents/{people.api.agent_id}/events",
                                           headers=people.api.auth(people.api.agent))
    for socket in (agent_stream, wallboard, token_stream):
        assert (await socket.receive_json(timeout=5))["type"] == "subscribed"

    assert (await client.delete("/v1/session", headers=ann.headers())).status == 200
    assert (await client.post("/v1/session/sign-out-everywhere", json={}, headers=sue.headers())).status == 200
    for socket in (agent_stream, wallboard):
        while (message := await socket.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
            pass  # the wallboard's snapshot, sent before the check
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert not token_stream.closed
    await token_stream.close()


async def test_every_open_stream_is_checked_in_one_query_and_a_signed_out_ones_close_within_the_interval(
        people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four consoles open (two tabs of ann's, bob's, sue's wallboard): each interval asks about
    their three sessions in one query, not one per stream; once ann and sue sign out, their
    three streams close within the interval and bob's stays open."""
    interval = 0.5
    monkeypatch.setattr(events, "SESSION_CHECK_SECONDS", interval)
    client, api = people.api.client, people.api
    assert client.app is not None
    watch = client.app[events.SESSION_WATCH]
    ann, bob, sue = [await people.sign_in(name) for name in (people.ann, people.bob, people.sue)]
    ann_tabs = [await client.ws_connect(f"/v1/agents/{api.agent_id}/events", headers=ann.headers(csrf=False))
                for _ in range(2)]
    bob_tab = await client.ws_connect(f"/v1/agents/{api.other_agent_id}/events", headers=bob.headers(csrf=False))
    wallboard = await client.ws_connect("/v1/events", headers=sue.headers(csrf=False))
    for socket in (*ann_tabs, bob_tab, wallboard):
        assert (await socket.receive_json(timeout=5))["type"] == "subscribed"
    queries = watch.queries
    await asyncio.sleep(interval * 3.5)
    assert 1 <= watch.queries - queries <= 4  # one query an interval (per stream, 12 or more)
    assert watch.last_asked == 3  # three sessions behind four streams, in that one query

    assert (await client.delete("/v1/session", headers=ann.headers())).status == 200
    assert (await client.post("/v1/session/sign-out-everywhere", json={}, headers=sue.headers())).status == 200
    for socket in (*ann_tabs, wallboard):
        while (message := await socket.receive(timeout=interval + 2.0)).type is aiohttp.WSMsgType.TEXT:
            pass  # the wallboard's snapshot, sent before the check
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    await asyncio.sleep(interval * 2)
    assert not bob_tab.closed
    assert watch.last_asked == 1  # only bob's session is still asked about
    await bob_tab.close()


async def test_another_roles_console_is_a_page_with_a_way_on(people: People) -> None:
    client = people.api.client
    ann, sue = await people.sign_in(people.ann), await people.sign_in(people.sue)
    for signed, path, home in ((sue, "/agent", "/supervisor"), (ann, "/supervisor", "/agent")):
        response = await client.get(path, headers=signed.headers(csrf=False), allow_redirects=False)
        assert response.status == 403 and response.content_type == "text/html"
        assert '<a href="/">Go to your console</a>' in await response.text()
        onward = await client.get("/", headers=signed.headers(csrf=False), allow_redirects=False)
        assert onward.status == 302 and onward.headers["Location"] == home
