"""What a run would do now: pending work per stage, totals, the credit estimate and what the
work should cost in money."""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from api_gateway.accounts import balance
from api_gateway.costs import (
    HISTORY_RUNS,
    CostBasis,
    cost_rates,
    expected_cost,
    standard_rates,
)
from api_gateway.money import MoneyEstimate, money_estimate
from contracts.credits import (
    Estimate,
    PendingWork,
    StartCheck,
    estimate,
    projected_by_stage,
)
from contracts.db import tables as t
from contracts.db.pending import (
    BUDGET_SPENT,
    FAILURE_BUDGET,
    PICKERS,
    pending_counts,
    pending_work,
)
from contracts.envelope import utcnow
from contracts.stages import IMAGES_PER_CONTENT, PRICES, STAGES
from contracts.values import StageType


class EstimateOut(Estimate):
    """The credit estimate (the figures a scheduled start checks too), the site's pending work
    and what that work should cost in money."""

    site_id: int
    pending: PendingWork
    expected_cost_usd: float | None = Field(
        description="US dollars the projected work should cost the AI providers: per stage, its "
        "projected items times its mean cost per item over the site's last "
        f"{HISTORY_RUNS} finished runs (else the account's); null when a stage with work has "
        "no priced history in either."
    )
    cost_basis: CostBasis = Field(
        description="Where the cost per item came from: the site's runs, the account's, both "
        "(per stage), `no_history` (expected_cost_usd is null) or `no_pending_work` (0)."
    )
    money: MoneyEstimate = Field(
        description="The pending work (the items estimated_credits counts) in US dollars in "
        "both AI modes, standard and economy, from what the stages' calls cost per item lately."
    )


class StageOverview(BaseModel):
    stage_number: int
    stage_name: str
    stage_type: StageType
    pending: int = Field(description="Items the stage would pick now.")
    total: int = Field(description="All rows of the stage's input for the site.")
    held_back: int = Field(
        0,
        description=f"Items not picked because they failed {FAILURE_BUDGET} times (stages 1-5) "
        "or failed (stage 6 images); POST retry_failed releases them.",
    )


class PipelineOverview(BaseModel):
    site_id: int
    stages: list[StageOverview]


def _start_check(conn: Connection, site_id: int) -> StartCheck:
    c = t.automation_configs.c
    chosen = conn.execute(sa.select(c.start_check).where(c.site_id == site_id)).scalar()
    return chosen or "pending"  # no config row yet: the default


def projected_items(work: PendingWork) -> dict[int, int]:
    """Items each paid stage is projected to pick. The projection (in contracts) is in credits;
    each stage's price turns it back into items, so the two cannot drift apart."""
    return {
        stage: round(credits * PRICES[stage].per / PRICES[stage].credits)
        for stage, credits in projected_by_stage(work).items()
        if PRICES[stage].credits
    }


def pending_items(work: PendingWork) -> dict[int, int]:
    """Items each paid stage would process for the work pending now: what SPEC's estimate
    (contracts.credits.estimate_now) counts, stage 6 with the images the pending content will
    have."""
    images = work.content_without_images * IMAGES_PER_CONTENT + work.pending_images
    return {
        1: work.keywords,
        2: work.clusters,
        4: work.tasks,
        5: work.content_without_images,
        6: images,
    }


def _estimate(conn: Connection, account_id: int, site_id: int) -> EstimateOut:
    work = pending_work(conn, site_id)
    figures = estimate(work, balance(conn, account_id), _start_check(conn, site_id))
    usd, basis = expected_cost(projected_items(work), cost_rates(conn, account_id, site_id))
    standard = standard_rates(conn, account_id, site_id, utcnow())
    return EstimateOut(
        site_id=site_id,
        pending=work,
        expected_cost_usd=usd,
        cost_basis=basis,
        money=money_estimate(pending_items(work), standard),
        **figures.model_dump(),
    )


async def estimate_for(conn: AsyncConnection, account_id: int, site_id: int) -> EstimateOut:
    return await conn.run_sync(lambda c: _estimate(c, account_id, site_id))


def _totals(conn: Connection, site_id: int) -> dict[int, int]:
    counts = [
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.site_id == site_id)
        .scalar_subquery()
        for table, _ in PICKERS.values()
    ]
    return dict(zip(PICKERS, conn.execute(sa.select(*counts)).one(), strict=True))


def _held_back(conn: Connection, site_id: int) -> dict[int, int]:
    f, i = t.item_failures.c, t.images.c
    rows = conn.execute(
        sa.select(f.stage, sa.func.count())
        .where(f.site_id == site_id, BUDGET_SPENT, f.stage <= 5)
        .group_by(f.stage)
    )
    held = dict(rows.tuples().all())
    failed_images = sa.select(sa.func.count()).where(i.site_id == site_id, i.status == "failed")
    held[6] = conn.execute(failed_images).scalar_one()
    return held


def _overview(conn: Connection, site_id: int) -> PipelineOverview:
    pending, totals = pending_counts(conn, site_id), _totals(conn, site_id)
    held = _held_back(conn, site_id)
    stages = [
        StageOverview(
            stage_number=n,
            stage_name=STAGES[n].name,
            stage_type=STAGES[n].type,
            pending=pending[n],
            total=totals[n],
            held_back=held.get(n, 0),
        )
        for n in STAGES
    ]
    return PipelineOverview(site_id=site_id, stages=stages)


async def overview_for(conn: AsyncConnection, site_id: int) -> PipelineOverview:
    return await conn.run_sync(lambda c: _overview(c, site_id))


async def active_run_id(conn: AsyncConnection, site_id: int) -> str | None:
    r = t.automation_runs.c
    return (
        await conn.execute(
            sa.select(r.run_id)
            .where(r.site_id == site_id, r.status.in_(("running", "paused")))
            .order_by(r.started_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


class Released(BaseModel):
    site_id: int
    stage: int | None = Field(description="The stage whose failed items were released; null: all.")
    released: int = Field(description="Items the stages will pick again.")


def _release_failed(conn: Connection, site_id: int, stage: int | None) -> int:
    """Forget the failures of the site's items (of one stage, or all), and put failed images
    back to pending: the next run picks them again. Returns how many were held back."""
    f, i = t.item_failures.c, t.images.c
    where = [f.site_id == site_id] + ([f.stage == stage] if stage is not None else [])
    spent = conn.execute(sa.delete(t.item_failures).where(*where).returning(BUDGET_SPENT))
    released = sum(1 for held in spent.scalars() if held)
    if stage in (None, 6):
        images = conn.execute(
            sa.update(t.images)
            .where(i.site_id == site_id, i.status == "failed")
            .values(status="pending", error=None)
        )
        released += images.rowcount
    return released


async def release_failed(conn: AsyncConnection, site_id: int, stage: int | None) -> Released:
    released = await conn.run_sync(lambda c: _release_failed(c, site_id, stage))
    return Released(site_id=site_id, stage=stage, released=released)
