"""GET current_run, history, current_processing and logs: reads of the run read model."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api_gateway import run_views
from api_gateway.auth import CallerDep
from api_gateway.db import DbConn, known_run, site_of, site_run
from api_gateway.errors import not_found
from api_gateway.params import RUN_ID_PATTERN, Day, Limit, Offset, RunId, SiteId, WholeNumber
from api_gateway.run_logs import main_log_tail
from api_gateway.run_views import CurrentRun, ProcessingState, RunDetail, RunSummary
from contracts.db import tables as t
from contracts.values import Trigger

router = APIRouter(tags=["runs"])
OptionalRunId = Annotated[
    str | None,
    Query(pattern=RUN_ID_PATTERN, max_length=100),
]
Lines = Annotated[
    int, Query(ge=1, le=1000, description="How many lines from the end."), WholeNumber
]


class History(BaseModel):
    site_id: int
    runs: list[RunSummary] = Field(description="Newest first.")
    total: int = Field(description="How many runs the filters match.")


class LogTail(BaseModel):
    run_id: str
    lines: list[str]
    file_exists: bool = Field(description="False until the log-sink has written the log.")


@router.get("/current_run", response_model=CurrentRun, summary="The running or paused run")
async def current_run(caller: CallerDep, conn: DbConn, site_id: SiteId) -> CurrentRun:
    run = await site_run(conn, caller, site_id)
    detail = await run_views.detail(conn, run) if run else None
    return CurrentRun(site_id=site_id, run=detail)


@router.get(
    "/history",
    response_model=History,
    summary="The last 20 runs, or a page of those with a status, trigger and days",
    description="Without filters: the last 20 runs. `status`, `trigger`, `from` and `to` (UTC "
    "days the run started on, both included) narrow the list; `limit` and `offset` page it, "
    "newest first. Rejected starts are never listed.",
)
async def history(
    caller: CallerDep,
    conn: DbConn,
    site_id: SiteId,
    status: Annotated[run_views.RunStatus | None, Query(description="Only this status.")] = None,
    trigger: Annotated[Trigger | None, Query(description="Only this trigger.")] = None,
    from_day: Annotated[Day | None, Query(alias="from", description="First day.")] = None,
    to_day: Annotated[Day | None, Query(alias="to", description="Last day.")] = None,
    limit: Limit = run_views.HISTORY_LENGTH,
    offset: Offset = 0,
) -> History:
    await site_of(conn, caller, site_id)
    r = t.automation_runs.c
    where = [r.site_id == site_id, r.status != "rejected"]
    if status is not None:
        where.append(r.status == status)
    if trigger is not None:
        where.append(r.trigger == trigger)
    if from_day is not None:
        where.append(r.started_at >= datetime.combine(from_day, time(), UTC))
    if to_day is not None:
        where.append(r.started_at < datetime.combine(to_day + timedelta(days=1), time(), UTC))
    count = sa.select(sa.func.count()).select_from(t.automation_runs).where(*where)
    total = await conn.scalar(count)
    rows = await conn.execute(
        sa.select(t.automation_runs)
        .where(*where)
        .order_by(r.started_at.desc().nulls_last(), r.run_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return History(site_id=site_id, runs=[run_views.summary(row) for row in rows], total=total)


@router.get(
    "/run",
    response_model=RunDetail,
    summary="One run with its seven stage results, finished or not",
)
async def run(caller: CallerDep, conn: DbConn, run_id: RunId) -> RunDetail:
    return await run_views.detail(conn, await known_run(conn, caller, run_id))


@router.get(
    "/current_processing",
    response_model=ProcessingState,
    summary="Live state of the run's current stage, also while paused",
    description="Without run_id: the site's running or paused run, or when there is none, "
    "`run_status: idle` (like current_run's `run: null`). With run_id: that run of the site "
    "(404 when the site has no such run).",
)
async def current_processing(
    caller: CallerDep, conn: DbConn, site_id: SiteId, run_id: OptionalRunId = None
) -> ProcessingState:
    run = await site_run(conn, caller, site_id, run_id)
    if run is None and run_id is None:
        return run_views.idle_state()
    if run is None:
        raise not_found(f"run {run_id}")
    stage = await run_views.stage_row(conn, run.run_id, run.current_stage)
    return run_views.processing_state(run, stage)


@router.get("/logs", response_model=LogTail, summary="Tail of the run's main log")
async def logs(
    request: Request, caller: CallerDep, conn: DbConn, run_id: RunId, lines: Lines = 100
) -> LogTail:
    run = await known_run(conn, caller, run_id)
    base = request.app.state.settings.log_base_dir
    found = main_log_tail(base, run, caller.account_id, lines)
    return LogTail(run_id=run.run_id, lines=found or [], file_exists=found is not None)
