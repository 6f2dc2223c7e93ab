"""GET current_run, history, current_processing and logs: reads of the run read model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api_gateway import run_views
from api_gateway.auth import CallerDep
from api_gateway.db import run_of, site_of
from api_gateway.errors import not_found
from api_gateway.params import RUN_ID_PATTERN, RunId, SiteId
from api_gateway.planning import active_run_id
from api_gateway.run_logs import main_log_tail
from api_gateway.run_views import CurrentRun, History, ProcessingState, RunDetail

router = APIRouter(tags=["runs"])
OptionalRunId = Annotated[
    str | None,
    Query(pattern=RUN_ID_PATTERN, max_length=100),
]
Lines = Annotated[int, Query(ge=1, le=1000, description="How many lines from the end.")]


class LogTail(BaseModel):
    run_id: str
    lines: list[str]
    file_exists: bool = Field(description="False until the log-sink has written the log.")


@router.get("/current_run", response_model=CurrentRun, summary="The running or paused run")
async def current_run(request: Request, caller: CallerDep, site_id: SiteId) -> CurrentRun:
    async with request.app.state.engine.connect() as conn:
        await site_of(conn, caller, site_id)
        run_id = await active_run_id(conn, site_id)
        run = await run_of(conn, caller, run_id) if run_id else None
        detail = await run_views.detail(conn, run) if run else None
    return CurrentRun(site_id=site_id, run=detail)


@router.get("/history", response_model=History, summary="The last 20 runs")
async def history(request: Request, caller: CallerDep, site_id: SiteId) -> History:
    async with request.app.state.engine.connect() as conn:
        await site_of(conn, caller, site_id)
        return History(site_id=site_id, runs=await run_views.history(conn, site_id))


@router.get(
    "/run",
    response_model=RunDetail,
    summary="One run with its seven stage results, finished or not",
)
async def run(request: Request, caller: CallerDep, run_id: RunId) -> RunDetail:
    async with request.app.state.engine.connect() as conn:
        found = await run_of(conn, caller, run_id)
        if found is None:
            raise not_found(f"run {run_id}")
        return await run_views.detail(conn, found)


@router.get(
    "/current_processing",
    response_model=ProcessingState,
    summary="Live state of the run's current stage, also while paused",
    description="Without run_id: the site's running or paused run (404 when there is none).",
)
async def current_processing(
    request: Request, caller: CallerDep, site_id: SiteId, run_id: OptionalRunId = None
) -> ProcessingState:
    async with request.app.state.engine.connect() as conn:
        await site_of(conn, caller, site_id)
        run_id = run_id or await active_run_id(conn, site_id)
        run = await run_of(conn, caller, run_id) if run_id else None
        if run is None or run.site_id != site_id:
            raise not_found(f"run {run_id}" if run_id else f"active run of site {site_id}")
        stages = await run_views.stage_rows(conn, run.run_id)
    return run_views.processing_state(run, stages.get(run.current_stage))


@router.get("/logs", response_model=LogTail, summary="Tail of the run's main log")
async def logs(request: Request, caller: CallerDep, run_id: RunId, lines: Lines = 100) -> LogTail:
    async with request.app.state.engine.connect() as conn:
        run = await run_of(conn, caller, run_id)
    if run is None:
        raise not_found(f"run {run_id}")
    base = request.app.state.settings.log_base_dir
    found = main_log_tail(base, run, caller.account_id, lines)
    return LogTail(run_id=run.run_id, lines=found or [], file_exists=found is not None)
