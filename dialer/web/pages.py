"""The consoles' pages, served by `dialer serve` beside the API: `/signin`, `/agent` (the agent's
console), `/` (to the signed-in person's console) and the static files under `/static/`.

Pages are HTML and scripts only: everything they show and do goes through the documented API
(`/v1/...`) and its event streams, with the person's session cookie. A page asked for without a
session redirects to `/signin?next=PAGE`. These routes are not part of the OpenAPI document
(they are not API); `PAGE_PATHS` names them for the test that compares the two.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from dialer.api.http import public
from dialer.web import STATIC_DIR
from dialer.web.sessions import signed_in_page
from dialer.web.users import UserRole

PAGE_PATHS = frozenset({"/", "/signin", "/agent", "/supervisor", "/static/{path}"})
# Pages and scripts are the application itself: never framed, no inline script from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; "
                               "img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CONSOLES = {UserRole.AGENT: "/agent", UserRole.SUPERVISOR: "/supervisor", UserRole.ADMIN: "/supervisor"}


def wrong_console(words: str) -> web.Response:
    """403 for a signed-in person on another role's console: a page with a way on (their own
    console, or signing in as someone else), not a dead end of plain text."""
    body = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not your console - dialer</title>'
            '<link rel="stylesheet" href="/static/shell.css"></head><body><main class="signin">'
            f'<h1>Not your console</h1><p>{words}</p><p><a href="/">Go to your console</a></p>'
            '</main></body></html>')
    return web.Response(status=403, text=body, content_type="text/html", headers=SECURITY_HEADERS)


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / name, headers=SECURITY_HEADERS)


@public
async def sign_in_page(request: web.Request) -> web.StreamResponse:
    return _page("signin.html")


@public
async def agent_page(request: web.Request) -> web.StreamResponse:
    session = await signed_in_page(request)
    if isinstance(session, web.StreamResponse):
        return session
    if session.user.role is not UserRole.AGENT:
        return wrong_console("This console is for agents; sign in with an agent's account.")
    return _page("agent.html")


@public
async def home_page(request: web.Request) -> web.StreamResponse:
    session = await signed_in_page(request)
    if isinstance(session, web.StreamResponse):
        return session
    return web.Response(status=302, headers={"Location": CONSOLES.get(session.user.role, "/signin")})


@public
async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of `dialer/web/static/` (no listing, nothing outside it)."""
    relative = request.match_info["path"]
    path = (STATIC_DIR / relative).resolve()
    if STATIC_DIR not in path.parents or not path.is_file() or any(part.startswith(".") for part in Path(relative).parts):
        raise web.HTTPNotFound()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return web.FileResponse(path, headers=headers)


def add_pages(app: web.Application) -> None:
    app.router.add_get("/", home_page)
    app.router.add_get("/signin", sign_in_page)
    app.router.add_get("/agent", agent_page)
    app.router.add_get("/static/{path:.+}", static_file)
