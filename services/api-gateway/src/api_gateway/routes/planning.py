"""GET estimate, GET pipeline_overview and POST retry_failed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.params import SiteId, WholeNumber
from api_gateway.planning import (
    EstimateOut,
    PipelineOverview,
    Released,
    estimate_for,
    overview_for,
    release_failed,
)

router = APIRouter(tags=["planning"])


@router.get(
    "/estimate",
    response_model=EstimateOut,
    summary="Credits the pending work needs, and the money it should cost",
)
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


@router.post(
    "/retry_failed",
    response_model=Released,
    summary="Let the stages pick failed items again",
    description="Items of stages 1-5 that failed three times (across runs) and failed images "
    "are not picked again on their own; this releases them, for one stage or all.",
)
async def retry_failed(
    request: Request,
    caller: CallerDep,
    site_id: SiteId,
    stage: Annotated[
        int | None, Query(ge=1, le=6, description="Only this stage (1-6)."), WholeNumber
    ] = None,
) -> Released:
    async with request.app.state.engine.begin() as conn:
        await site_of(conn, caller, site_id)
        return await release_failed(conn, site_id, stage)
