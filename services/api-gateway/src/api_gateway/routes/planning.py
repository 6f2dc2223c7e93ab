"""GET estimate and GET pipeline_overview."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.params import SiteId
from api_gateway.planning import EstimateOut, PipelineOverview, estimate_for, overview_for

router = APIRouter(tags=["planning"])


@router.get("/estimate", response_model=EstimateOut, summary="Credits the pending work needs")
async def get_estimate(request: Request, caller: CallerDep, site_id: SiteId) -> EstimateOut:
    async with request.app.state.engine.connect() as conn:
        await site_of(conn, caller, site_id)
        return await estimate_for(conn, caller.account_id, site_id)


@router.get(
    "/pipeline_overview", response_model=PipelineOverview, summary="Pending and total per stage"
)
async def get_pipeline_overview(
    request: Request, caller: CallerDep, site_id: SiteId
) -> PipelineOverview:
    async with request.app.state.engine.connect() as conn:
        await site_of(conn, caller, site_id)
        return await overview_for(conn, site_id)
