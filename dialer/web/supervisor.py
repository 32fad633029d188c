"""The supervisor's console: the `/supervisor` page and each supervisor's browser phone.

A supervisor (or admin) monitors calls from the page through its own browser phone: the first
time a person's page asks (`GET /v1/session/supervisor-phone`), one of the provisioned
`supervisorNN-web` endpoints no other person holds is assigned to them (`supervisor_phones`,
migration 0017) and kept; its credentials go to that signed-in page only. So any number of
supervisors, up to the endpoints provisioned (settings `supervisors`), each with their own
credentials; monitors are audited under the person's id as before.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from crm_bridge.store import TokenRole
from dialer.api.http import DEPS, SESSION, ApiError, public
from dialer.api.routes import Answer, Reply, RouteTable
from dialer.provision.credentials import CredentialsError, SipLogin, sip_credentials
from dialer.provision.sip_endpoints import supervisor_endpoint
from dialer.web import STATIC_DIR
from dialer.web.pages import SECURITY_HEADERS, wrong_console
from dialer.web.sessions import SIP_CREDENTIALS_FILE, SipLoginBody, signed_in_page
from dialer.web.users import UserRole

routes = RouteTable("sessions")
MOST_SUPERVISORS = 99


def _login(endpoint: str, path: Path) -> SipLogin | None:
    try:
        login = sip_credentials(endpoint, path)
    except CredentialsError:
        return None
    return login if login.ws_url is not None else None


@routes.get("/v1/session/supervisor-phone", "getSupervisorPhone",
            "The signed-in supervisor's browser phone for monitoring (assigned on first ask; to that page only)",
            roles=(TokenRole.SUPERVISOR, TokenRole.ADMIN),
            responses={200: Answer(SipLoginBody, "the endpoint (give it to POST /v1/calls/{id}/monitor) and its "
                                                 "password")},
            errors={403: "`not_signed_in`: bearer tokens never get SIP passwords",
                    409: "`no_phone_free`: every provisioned supervisor phone is held by another person",
                    503: "`controller_unavailable`: this API does not know the SIP credentials file"})
async def get_supervisor_phone(request: web.Request) -> Reply:
    signed = request.get(SESSION)
    if signed is None:
        raise ApiError(403, "not_signed_in", "only a signed-in person's page may ask this (not a bearer token)")
    path = request.app.get(SIP_CREDENTIALS_FILE)
    if path is None:
        raise ApiError(503, "controller_unavailable", "this API runs without the phones' credentials")
    db = request.app[DEPS].store.reader
    user_id = signed.token.token_id
    endpoint = await db.fetchval("SELECT endpoint FROM supervisor_phones WHERE user_id = $1", user_id)
    login = None if endpoint is None else _login(endpoint, path)
    if login is None:
        taken = {row["endpoint"] for row in await db.fetch("SELECT endpoint FROM supervisor_phones")}
        for number in range(1, MOST_SUPERVISORS + 1):
            candidate = f"{supervisor_endpoint(number)}-web"
            if candidate in taken:
                continue
            login = _login(candidate, path)
            if login is None:
                break  # past the provisioned ones
            # Two pages asking at once: the unique endpoint lets only one of them have it.
            won = await db.fetchval(
                "INSERT INTO supervisor_phones (user_id, endpoint) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE "
                "SET endpoint = EXCLUDED.endpoint, assigned_at = now() RETURNING endpoint", user_id, candidate)
            if won == candidate:
                break
            login = None
        if login is None:
            raise ApiError(409, "no_phone_free", "every supervisor phone is held by someone else; provision more "
                                                 "(settings `supervisors`)")
    return Reply(SipLoginBody(endpoint=login.endpoint, username=login.username, password=login.password,
                              sip_uri=login.sip_uri, ws_url=login.ws_url or "", ice_servers=list(login.ice_servers)),
                 headers={"Cache-Control": "no-store"})


@public
async def supervisor_page(request: web.Request) -> web.StreamResponse:
    session = await signed_in_page(request)
    if isinstance(session, web.StreamResponse):
        return session
    if session.user.role not in (UserRole.SUPERVISOR, UserRole.ADMIN):
        return wrong_console("This console is for supervisors; sign in with a supervisor's account.")
    return web.FileResponse(STATIC_DIR / "supervisor.html", headers=SECURITY_HEADERS)


def add_supervisor_page(app: web.Application) -> None:
    app.router.add_get("/supervisor", supervisor_page)
