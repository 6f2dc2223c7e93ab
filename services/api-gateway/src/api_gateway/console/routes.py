"""The console's HTML routes: sign in and out, the site pages, a site's review view (the queue
and one article, each at its own address), the webhooks page, and the static files.

Sign-in exchanges an API token for the session cookie (HttpOnly, SameSite=Strict, with an
expiry). Everything the page does afterwards goes through the JSON API under the same cookie;
the API checks tenancy and, for changes, the CSRF token (see auth).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api_gateway import accounts
from api_gateway.auth import csrf_ok, session_caller, signer
from api_gateway.console import pages
from api_gateway.errors import ApiError
from api_gateway.params import MAX_ID, RUN_ID_PATTERN
from api_gateway.session import COOKIE_NAME, CSRF_FIELD

router = APIRouter(include_in_schema=False)
STATIC = StaticFiles(directory=Path(__file__).parent / "static")
MAX_FORM_BYTES = 4096
NO_STORE = {"Cache-Control": "no-store"}
SITE_VIEWS = frozenset({"content", "history", "config", "usage"})
RUN_ID = re.compile(RUN_ID_PATTERN.strip("^$"))


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers=NO_STORE)


def _home() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items()}


def _same_origin(request: Request) -> bool:
    """A browser's form post names its origin; one from another site must not sign anyone in."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


@router.get("/")
async def home(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _html(pages.sign_in())
    async with request.app.state.engine.connect() as conn:
        sites = await conn.run_sync(lambda c: accounts.list_sites(c, caller.account_id))
    if not sites:
        return _html(pages.no_sites(_csrf(request)))
    return RedirectResponse(f"/sites/{sites[0].id}", status_code=303)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    if not _same_origin(request):
        return _html(pages.sign_in("This sign-in did not come from this console."), 403)
    token = (await _form(request)).get("token", "").strip()
    caller = None
    if token:
        async with request.app.state.engine.connect() as conn:
            caller = await conn.run_sync(lambda c: accounts.authenticate(c, token))
    if caller is None:
        return _html(pages.sign_in("That token is unknown or revoked."), 401)
    session, cookie = signer(request).issue(caller.token_id)
    response = _home()
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        expires=session.expires_at,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    if not csrf_ok(request, (await _form(request)).get(CSRF_FIELD)):
        return _html(pages.not_found("that sign-out form"), 403)
    session = signer(request).read(request.cookies.get(COOKIE_NAME))
    if session is not None:
        async with request.app.state.engine.begin() as conn:
            await conn.run_sync(
                lambda c: accounts.sign_out_session(c, session.nonce, session.expires_at)
            )
    response = _home()
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.get("/sites")
async def open_site(request: Request, site_id: str = "") -> Response:
    """The site picker's form target (it works without script too)."""
    return RedirectResponse(f"/sites/{site_id}" if site_id.isdigit() else "/", status_code=303)


def _valid_id(value: str) -> bool:
    return value.isdigit() and 1 <= int(value) <= MAX_ID


async def _site_page(request: Request, site_id: str, page) -> Response:
    """`page(sites, current, csrf)` for a site of the signed-in account; else sign-in or 404."""
    caller = await session_caller(request)
    if caller is None:
        return _home()
    if not _valid_id(site_id):
        return _html(pages.not_found(f"site {site_id}"), 404)
    async with request.app.state.engine.connect() as conn:
        sites = await conn.run_sync(lambda c: accounts.list_sites(c, caller.account_id))
    current = next((s for s in sites if s.id == int(site_id)), None)
    if current is None:
        return _html(pages.not_found(f"site {site_id}"), 404)
    return _html(page(sites, current, _csrf(request)))


@router.get("/sites/{site_id}")
async def site_page(request: Request, site_id: str) -> Response:
    return await _site_page(request, site_id, pages.site)


@router.get("/sites/{site_id}/history/{run_id}")
async def run_detail_page(request: Request, site_id: str, run_id: str) -> Response:
    """One run's detail in the history view (the script reads the run from the API)."""
    if not RUN_ID.fullmatch(run_id):
        return _html(pages.not_found(f"run {run_id}"), 404)
    return await _site_page(request, site_id, partial(pages.site, view="/history"))


@router.get("/sites/{site_id}/webhooks")
async def site_webhooks_page(request: Request, site_id: str) -> Response:
    """The account's webhooks, reached from a site's views (its links stay on the page)."""
    return await _site_page(
        request, site_id, lambda sites, current, csrf: pages.webhooks(sites, csrf, current.id)
    )


@router.get("/sites/{site_id}/review")
async def review_page(request: Request, site_id: str) -> Response:
    """The review queue; the article view below is the same page, its script shows either."""
    return await _site_page(request, site_id, pages.review)


@router.get("/sites/{site_id}/review/{content_id}")
async def review_article_page(request: Request, site_id: str, content_id: str) -> Response:
    if not _valid_id(content_id):
        return _html(pages.not_found(f"article {content_id}"), 404)
    return await _site_page(request, site_id, pages.review)


@router.get("/sites/{site_id}/{view}")
async def site_view_page(request: Request, site_id: str, view: str) -> Response:
    """A view of the site page (content, history, config, usage): the same shell, its script
    shows the view the address names. Review and webhooks have routes of their own."""
    if view not in SITE_VIEWS:
        return _html(pages.not_found(f"view {view}"), 404)
    return await _site_page(request, site_id, partial(pages.site, view=f"/{view}"))


@router.get("/webhooks")
async def webhooks_page(request: Request) -> Response:
    caller = await session_caller(request)
    if caller is None:
        return _home()
    async with request.app.state.engine.connect() as conn:
        sites = await conn.run_sync(lambda c: accounts.list_sites(c, caller.account_id))
    return _html(pages.webhooks(sites, _csrf(request)))


def _csrf(request: Request) -> str:
    session = signer(request).read(request.cookies.get(COOKIE_NAME))
    if session is None:
        raise ApiError(401, "no console session")
    return signer(request).csrf_token(session)
