"""GET config and PUT update_config."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api_gateway import request_body, site_config
from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.params import SiteId
from api_gateway.site_config import ConfigOut, ConfigUpdate

router = APIRouter(tags=["config"])


@router.get("/config", response_model=ConfigOut, summary="The site's config (made if missing)")
async def get_config(request: Request, caller: CallerDep, site_id: SiteId) -> ConfigOut:
    async with request.app.state.engine.begin() as conn:
        return await site_config.load(conn, await site_of(conn, caller, site_id))


@router.put(
    "/update_config",
    response_model=ConfigOut,
    openapi_extra=request_body.json_request_body(ConfigUpdate),
    responses=request_body.REFUSALS,
    summary="Change config fields",
)
async def update_config(request: Request, caller: CallerDep, site_id: SiteId) -> ConfigOut:
    change = await request_body.read_json(request, ConfigUpdate)  # once the caller is known
    async with request.app.state.engine.begin() as conn:
        return await site_config.update(conn, await site_of(conn, caller, site_id), change)
