"""Bearer-token authentication as a FastAPI dependency (tokens are stored hashed; see accounts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api_gateway import accounts
from api_gateway.accounts import Caller
from api_gateway.errors import ApiError

bearer = HTTPBearer(
    auto_error=False, description="An API token from `automation-admin create-token`."
)


class Unauthorized(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, code="unauthorized")


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    token = credentials.credentials
    async with request.app.state.engine.connect() as conn:
        caller = await conn.run_sync(lambda c: accounts.authenticate(c, token))
    if caller is None:
        raise Unauthorized("unknown or revoked token")
    if caller.use_is_stale(datetime.now(UTC)):
        async with request.app.state.engine.begin() as conn:
            await conn.run_sync(lambda c: accounts.record_token_use(c, caller.token_id))
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
