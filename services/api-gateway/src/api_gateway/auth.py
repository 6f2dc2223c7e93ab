"""Authentication as a FastAPI dependency: a bearer token (stored hashed; see accounts) or the
console's session cookie (see session), which must bring the CSRF token to change anything.
Signing out ends a session for good (its nonce is kept until it would have expired)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api_gateway import accounts
from api_gateway.accounts import Caller
from api_gateway.errors import ApiError
from api_gateway.session import COOKIE_NAME, CSRF_HEADER, UNSAFE_METHODS, SessionSigner

bearer = HTTPBearer(
    auto_error=False, description="An API token from `automation-admin create-token`."
)


class Unauthorized(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, code="unauthorized")


class CsrfRefused(ApiError):
    def __init__(self) -> None:
        super().__init__(
            403, f"missing or wrong CSRF token (send the {CSRF_HEADER} header)", code="csrf"
        )


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    caller = await _authenticate(request, credentials)
    if caller.use_is_stale(datetime.now(UTC)):
        async with request.app.state.engine.begin() as conn:
            await conn.run_sync(lambda c: accounts.record_token_use(c, caller.token_id))
    return caller


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Caller:
    if credentials is not None and credentials.credentials:
        return await _by_token(request, credentials.credentials)
    if request.cookies.get(COOKIE_NAME):
        caller = await session_caller(request)
        if caller is None:
            raise Unauthorized("the console session has ended; sign in again")
        if request.method in UNSAFE_METHODS and not csrf_ok(request):
            raise CsrfRefused()
        return caller
    raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")


async def still_signed_in(request: Request, caller: Caller) -> bool:
    """Whether the token or console session a request came with still stands: a long-lived
    response (a live stream) asks now and then, so revoking or signing out ends it."""
    try:
        again = await _authenticate(request, await bearer(request))
    except ApiError:
        return False
    return again.token_id == caller.token_id


async def _by_token(request: Request, token: str) -> Caller:
    async with request.app.state.engine.connect() as conn:
        caller = await conn.run_sync(lambda c: accounts.authenticate(c, token))
    if caller is None:
        raise Unauthorized("unknown or revoked token")
    return caller


def signer(request: Request) -> SessionSigner:
    return request.app.state.sessions


async def session_caller(request: Request) -> Caller | None:
    """The caller of a valid console session cookie, or None (missing, expired, revoked)."""
    session = signer(request).read(request.cookies.get(COOKIE_NAME))
    if session is None:
        return None
    async with request.app.state.engine.connect() as conn:
        return await conn.run_sync(
            lambda c: accounts.caller_by_session(c, session.token_id, session.nonce)
        )


def csrf_ok(request: Request, offered: str | None = None) -> bool:
    session = signer(request).read(request.cookies.get(COOKIE_NAME))
    offered = offered if offered is not None else request.headers.get(CSRF_HEADER)
    return session is not None and signer(request).csrf_ok(session, offered)


CallerDep = Annotated[Caller, Depends(current_caller)]
