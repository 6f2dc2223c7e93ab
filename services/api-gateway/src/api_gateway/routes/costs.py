"""GET run_cost and GET usage: what the AI work cost in money, beside the credits billed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api_gateway import costs
from api_gateway.auth import CallerDep
from api_gateway.costs import MAX_USAGE_DAYS, RunCost, UsageReport
from api_gateway.db import DbConn, known_run, site_of
from api_gateway.params import MAX_ID, Day, RunId, WholeNumber
from contracts.envelope import utcnow

router = APIRouter(tags=["costs"])
AnySiteId = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="A site of your account; without it, the whole account."),
    WholeNumber,
]
FromDay = Annotated[
    Day | None,
    Query(alias="from", description="First UTC day, YYYY-MM-DD; by default 29 days before `to`."),
]
ToDay = Annotated[
    Day | None, Query(alias="to", description="Last UTC day, YYYY-MM-DD; by default today.")
]


@router.get(
    "/run_cost",
    response_model=RunCost,
    summary="Money and credits per stage of a run",
    description="Per stage and in total: AI calls answered and retried, tokens, images, what "
    "the providers charged (a number in US dollars, `cost_complete` false when a call had no "
    "price), the credits billed, and the time waited at the rate-limit gate.",
)
async def run_cost(caller: CallerDep, conn: DbConn, run_id: RunId) -> RunCost:
    return await costs.run_cost(conn, await known_run(conn, caller, run_id))


@router.get(
    "/usage",
    response_model=UsageReport,
    summary="AI calls, money, credits and runs per UTC day",
    description="One row per UTC day from `from` to `to` (both included, at most "
    f"{MAX_USAGE_DAYS} days; by default the last 30 days), idle days as zeros; of one site, "
    "or without site_id of the whole account.",
)
async def usage(
    caller: CallerDep,
    conn: DbConn,
    site_id: AnySiteId = None,
    from_day: FromDay = None,
    to_day: ToDay = None,
) -> UsageReport:
    days = costs.day_range(from_day, to_day, today=utcnow().date())
    if site_id is not None:
        await site_of(conn, caller, site_id)
    return await costs.usage(conn, caller.account_id, site_id, days)
