"""Sign-in for people, over the API: `POST /v1/sessions` (user name and password -> a session
cookie), `GET /v1/session` (who is signed in, and the CSRF token the page sends back),
`DELETE /v1/session` (sign out), `POST /v1/session/sign-out-everywhere`, and
`GET /v1/session/sip` (the signed-in agent's browser-phone credentials, to that page only).

The cookie `dialer_session` is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it), Path=/, and Secure when the page came over HTTPS. Every state-changing request
of a session carries `X-CSRF-Token` (`dialer.api.http` checks it, and refuses another site's
`Origin`). Once signed in, every route of the API takes the session as it takes a bearer token
of the user's role: an agent's session acts for its own agent only.

Consoles (the agent's page here, a supervisor's console) reuse this module as it is: the pages
call these routes through `static/shell.js`, and a page handler asks `signed_in_page()` for the
person or a redirect to `/signin`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from crm_bridge.pg import DatabaseUnavailable
from crm_bridge.store import TokenRole
from dialer.api.events import SESSION_WATCH, SessionWatch
from dialer.api.http import (
    ALL_ROLES,
    DEPS,
    SESSION,
    SESSION_COOKIE,
    SESSIONS,
    ApiError,
    SignedIn,
)
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.api.schema import Line, RequestModel, ResponseModel, UtcTime
from dialer.provision.credentials import CredentialsError, sip_credentials
from dialer.web.users import Session, UserStore, hash_secret

routes = RouteTable("sessions")
SIP_CREDENTIALS_FILE: web.AppKey[Path | None] = web.AppKey("sip_credentials_file", Path)
USERS: web.AppKey[UserStore] = web.AppKey("users", UserStore)


# How long a resolved session outlives a PostgreSQL outage (the bearer tokens' stale window).
STALE_SESSION_SECONDS = 120.0
MAX_KNOWN_SESSIONS = 10_000


class CookieSessions:
    """`dialer.api.http.SessionResolver` over the users' sessions table.

    Every request asks PostgreSQL (a sign-out or a disabled account takes effect at once). While
    PostgreSQL does not answer, a session this process resolved within the last
    `stale_seconds` is still honoured until its own expiry, as bearer tokens are
    (`dialer.api.auth.TokenVerifier`): an agent's page keeps working through a short outage
    instead of answering 503 to every click, while its writes wait in the outbox."""

    def __init__(self, users: UserStore, *, stale_seconds: float = STALE_SESSION_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = users
        self._stale = stale_seconds
        self._clock = clock
        # Keyed by the cookie secret's hash: the secret itself is never kept.
        self._known: OrderedDict[str, tuple[SignedIn, float]] = OrderedDict()

    async def resolve(self, secret: str) -> SignedIn | None:
        if not secret or len(secret) > 100 or not secret.isascii():
            return None
        key = hash_secret(secret)
        try:
            session = await self.users.session(secret)
        except DatabaseUnavailable:
            known = self._known.get(key)
            if known is not None and self._clock() - known[1] < self._stale and known[0].expires_at > datetime.now(UTC):
                return known[0]
            raise
        if session is None:
            self._known.pop(key, None)
            return None
        found = signed_in(session)
        self._known[key] = (found, self._clock())
        self._known.move_to_end(key)
        while len(self._known) > MAX_KNOWN_SESSIONS:
            self._known.popitem(last=False)
        return found


def signed_in(session: Session) -> SignedIn:
    return SignedIn(session.session_id, session.as_token(), session.csrf_token, session.user.username,
                    session.expires_at)


# ---- models ----------------------------------------------------------------------------------
class SignInRequest(RequestModel):
    username: Line = Field(max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionBody(ResponseModel):
    """The person signed in, and what the page needs to act for them."""

    username: str
    role: str = Field(description="agent, supervisor or admin")
    agent_id: str | None = Field(description="the agent this account speaks for (agents only)")
    csrf_token: str = Field(description="send it back in `X-CSRF-Token` on every POST and DELETE")
    expires_at: UtcTime


class SignedOut(ResponseModel):
    sessions_ended: int


class SipLoginBody(ResponseModel):
    """What the page's softphone registers with (softphone.js `Softphone` options)."""

    endpoint: str
    username: str
    password: str
    sip_uri: str
    ws_url: str
    ice_servers: list[str]


def _body(session: Session | SignedIn, username: str, role: str, agent_id: str | None,
          expires_at: datetime) -> SessionBody:
    return SessionBody(username=username, role=role, agent_id=agent_id, csrf_token=session.csrf_token,
                       expires_at=expires_at)


def _users(request: web.Request) -> UserStore:
    return request.app[USERS]


def _session(request: web.Request) -> SignedIn:
    found: SignedIn | None = request.get(SESSION)
    if found is None:
        raise ApiError(403, "not_signed_in", "only a signed-in person's page may ask this (not a bearer token)")
    return found


def _set_cookie(response: web.StreamResponse, request: web.Request, secret: str, max_age: int | None) -> None:
    secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
    response.set_cookie(SESSION_COOKIE, secret, max_age=max_age, path="/", httponly=True, secure=secure,
                        samesite="Strict")


# ---- routes ----------------------------------------------------------------------------------
@routes.post("/v1/sessions", "signIn", "Sign a person in (user name and password): sets the session cookie",
             roles=None, body=SignInRequest,
             responses={201: Answer(SessionBody, "signed in; `Set-Cookie: dialer_session=...; HttpOnly; "
                                                 "SameSite=Strict`", headers={"Set-Cookie": "the session cookie",
                                                                         "Location": "the session (`GET /v1/session`)"})},
             errors={401: "`sign_in_failed`: wrong user name or password, or the account is disabled",
                     415: "`unsupported_media_type`: the body must be JSON (no HTML form may sign anyone in)",
                     429: "`sign_in_throttled`: 10 wrong passwords in 15 minutes; `Retry-After` says when"})
async def sign_in(request: web.Request, body: SignInRequest) -> web.StreamResponse:
    """The same answer for an unknown name, a wrong password and a disabled account."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the user name and password as JSON")
    users = _users(request)
    result = await users.sign_in(body.username.strip().lower(), body.password, remote=request.remote)
    if result.throttled_for is not None:
        raise ApiError(429, "sign_in_throttled", "too many wrong passwords for this user: wait, or ask an admin "
                       "to set a new password", retry_after=result.throttled_for)
    if result.session is None or result.secret is None:
        raise ApiError(401, "sign_in_failed", "the user name or password is wrong")
    session = result.session
    response = Reply(_body(session, session.user.username, session.user.role.value, session.user.agent_id,
                           session.expires_at), status=201, location="/v1/session").response()
    _set_cookie(response, request, result.secret, int((session.expires_at - request.app[DEPS].clock())
                                                      .total_seconds()))
    return response


@routes.get("/v1/session", "getSession", "Who is signed in, and the session's CSRF token", roles=ALL_ROLES,
            responses={200: Answer(SessionBody, "the session")},
            errors={401: "no session (or it ended)", 403: "`not_signed_in`: a bearer token, not a session"})
async def get_session(request: web.Request) -> Reply:
    signed = _session(request)
    return Reply(_body(signed, signed.username, signed.token.role.value, signed.token.agent_id, signed.expires_at),
                 headers={"Cache-Control": "no-store"})


@routes.delete("/v1/session", "signOut", "Sign out of this browser", roles=ALL_ROLES,
               responses={200: Answer(SignedOut, "signed out; the cookie is cleared")},
               errors={403: "`csrf_failed` or `not_signed_in`"})
async def sign_out(request: web.Request) -> web.StreamResponse:
    signed = _session(request)
    await _users(request).sign_out(signed.session_id)
    response = Reply(SignedOut(sessions_ended=1)).response()
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.post("/v1/session/sign-out-everywhere", "signOutEverywhere",
             "End every session of the signed-in person (every browser, this one too)", roles=ALL_ROLES,
             responses={200: Answer(SignedOut, "every session ended")},
             errors={403: "`csrf_failed` or `not_signed_in`"})
async def sign_out_everywhere(request: web.Request) -> web.StreamResponse:
    signed = _session(request)
    ended = await _users(request).sign_out_everywhere(signed.token.token_id)
    response = Reply(SignedOut(sessions_ended=ended)).response()
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def browser_endpoint(sip_endpoint: str | None, agent_id: str) -> str:
    """The agent's browser endpoint: its `-web` twin (docs/webrtc.md: one endpoint per kind of phone)."""
    base = sip_endpoint or agent_id
    return base if base.endswith("-web") else f"{base}-web"


@routes.get("/v1/session/sip", "getSessionSipLogin",
            "The signed-in agent's browser-phone credentials (to the signed-in page only)",
            roles=(TokenRole.AGENT,),
            responses={200: Answer(SipLoginBody, "the agent's browser endpoint and its password")},
            errors={403: "`not_signed_in` (bearer tokens never get SIP passwords) or not an agent",
                    404: "`no_phone`: the agent has no browser endpoint provisioned",
                    503: "`controller_unavailable`: this API does not know the SIP credentials file"})
async def get_sip_login(request: web.Request) -> Reply:
    signed = _session(request)
    path = request.app.get(SIP_CREDENTIALS_FILE)
    if path is None:
        raise ApiError(503, "controller_unavailable", "this API runs without the phones' credentials")
    agent_id = signed.token.agent_id
    assert agent_id is not None
    agent = await request.app[DEPS].store.get_agent(agent_id)
    endpoint = browser_endpoint(agent.sip_endpoint if agent else None, agent_id)
    try:
        login = sip_credentials(endpoint, path)
    except CredentialsError as error:
        raise ApiError(404, "no_phone", f"no browser phone for this agent: {error}") from None
    if login.ws_url is None:
        raise ApiError(404, "no_phone", f"{endpoint} is not a browser endpoint")
    return Reply(SipLoginBody(endpoint=endpoint, username=login.username, password=login.password,
                              sip_uri=login.sip_uri, ws_url=login.ws_url, ice_servers=list(login.ice_servers)),
                 headers={"Cache-Control": "no-store"})


# ---- pages -----------------------------------------------------------------------------------
async def signed_in_page(request: web.Request) -> Session | web.StreamResponse:
    """The person signed in for a page (GET of an HTML page), or the redirect to `/signin`
    (back to this page after signing in)."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    session = await _users(request).session(secret) if secret and len(secret) <= 100 else None
    if session is None:
        return web.Response(status=302, headers={"Location": f"/signin?next={quote(request.path_qs, safe='/')}"})
    return session


def add_session_routes(app: web.Application, users: UserStore, sip_credentials_file: Path | None) -> None:
    app[USERS] = users
    app[SESSIONS] = CookieSessions(users)
    watch = SessionWatch(users.live_sessions)
    app[SESSION_WATCH] = watch
    app.on_cleanup.append(watch.close)
    app[SIP_CREDENTIALS_FILE] = sip_credentials_file
