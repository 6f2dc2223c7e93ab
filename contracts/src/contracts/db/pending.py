"""What each stage would pick for a site right now: the estimate's input, and the pickers' rules
stated once so the gateway, the orchestrator and the workers agree."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contracts.credits import PendingWork
from contracts.db import tables as t
from contracts.values import DEFAULT_BATCH_SIZES

# An item of stages 1-5 that failed this many times, across runs, is not picked again until an
# operator retries it (POST retry_failed): without a budget every run would try it forever.
FAILURE_BUDGET = 3
# An item_failures row whose item has spent the budget: the one statement of that rule.
BUDGET_SPENT = t.item_failures.c.failures >= FAILURE_BUDGET


def within_budget(stage: int, item_id: sa.ColumnElement) -> sa.ColumnElement[bool]:
    f = t.item_failures.c
    return sa.not_(sa.exists().where(f.stage == stage, f.item_id == item_id, BUDGET_SPENT))


def stage_1_keywords(site_id: int) -> sa.ColumnElement[bool]:
    k = t.keywords.c
    return sa.and_(
        k.site_id == site_id,
        k.status == "new",
        k.cluster_id.is_(None),
        sa.not_(k.disabled),
        within_budget(1, k.id),
    )


def _without_output(
    inputs: sa.Table, site_id: int, status: str, stage: int, output_ref: sa.Column
) -> sa.ColumnElement[bool]:
    """The site's rows in `status` that the stage has made nothing from yet (`output_ref`: how
    the stage's output rows point at their input) and that have not spent its failure budget."""
    c = inputs.c
    has_output = sa.exists().where(output_ref == c.id)
    return sa.and_(
        c.site_id == site_id, c.status == status, sa.not_(has_output), within_budget(stage, c.id)
    )


def stage_2_clusters(site_id: int) -> sa.ColumnElement[bool]:
    return _without_output(t.clusters, site_id, "new", 2, t.content_ideas.c.cluster_id)


def stage_3_ideas(site_id: int) -> sa.ColumnElement[bool]:
    i = t.content_ideas.c
    return sa.and_(i.site_id == site_id, i.status == "new", within_budget(3, i.id))


def stage_4_tasks(site_id: int) -> sa.ColumnElement[bool]:
    return _without_output(t.tasks, site_id, "queued", 4, t.content.c.task_id)


def stage_5_content(site_id: int) -> sa.ColumnElement[bool]:
    return _without_output(t.content, site_id, "draft", 5, t.images.c.content_id)


def stage_6_images(site_id: int) -> sa.ColumnElement[bool]:
    i = t.images.c
    return sa.and_(i.site_id == site_id, i.status == "pending")


def stage_7_review(site_id: int) -> sa.ColumnElement[bool]:
    c = t.content.c
    return sa.and_(c.site_id == site_id, c.status == "review")


PICKERS = {
    1: (t.keywords, stage_1_keywords),
    2: (t.clusters, stage_2_clusters),
    3: (t.content_ideas, stage_3_ideas),
    4: (t.tasks, stage_4_tasks),
    5: (t.content, stage_5_content),
    6: (t.images, stage_6_images),
    7: (t.content, stage_7_review),
}


def pending_counts(conn: Connection, site_id: int) -> dict[int, int]:
    """Items each stage would pick now, by stage number, in one round trip."""
    counts = [
        sa.select(sa.func.count())
        .select_from(table)
        .where(rule(site_id))
        .scalar_subquery()
        .label(f"stage_{n}")
        for n, (table, rule) in PICKERS.items()
    ]
    row = conn.execute(sa.select(*counts)).one()
    return {n: row[n - 1] for n in PICKERS}


def _stage_1_history() -> sa.Select:
    """How stage 1 has grouped the site's keywords so far, whatever the provider or the run: its
    keywords in a cluster and the clusters they are in; and its stage 1 batch size (null without
    a config row)."""
    keyword, config, site = t.keywords.c, t.automation_configs.c, sa.bindparam("site_id")
    in_cluster = sa.and_(keyword.site_id == site, keyword.cluster_id.is_not(None))
    clustered = sa.select(sa.func.count()).select_from(t.keywords).where(in_cluster)
    clusters = sa.select(sa.func.count(sa.distinct(keyword.cluster_id))).where(in_cluster)
    batch = sa.select(config.stage_1_batch_size).where(config.site_id == site)
    return sa.select(
        batch.scalar_subquery(), clustered.scalar_subquery(), clusters.scalar_subquery()
    )


STAGE_1_HISTORY = _stage_1_history()


def pending_work(conn: Connection, site_id: int) -> PendingWork:
    """The estimate's input; the gateway's estimate and the scheduler's start check both read
    it here, so they project alike."""
    counts = pending_counts(conn, site_id)
    batch, clustered, clusters = conn.execute(STAGE_1_HISTORY, {"site_id": site_id}).one()
    return PendingWork(
        keywords=counts[1],
        clusters=counts[2],
        ideas=counts[3],
        tasks=counts[4],
        content_without_images=counts[5],
        pending_images=counts[6],
        keywords_per_batch=batch or DEFAULT_BATCH_SIZES[1],
        clustered_keywords=clustered,
        clusters_made=clusters,
    )
