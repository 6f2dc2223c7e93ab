"""What a run must have left behind, checked in the database: every output once, nothing
half-written, each charge once, and the credits the stage rules say."""

from __future__ import annotations

import sqlalchemy as sa

from contracts.db import tables as t
from tests.support.billing import stage_charge


def expected_credits(keywords: int, made: dict[str, int]) -> int:
    return (
        stage_charge(1, keywords)
        + stage_charge(2, made["clusters"])
        + stage_charge(4, made["content"])
        + stage_charge(5, made["content"])
        + stage_charge(6, made["images"])
    )


def assert_whole_and_unique(db: sa.Engine, site_id: int, made: dict[str, int]) -> None:
    """A finished run: every output once, nothing half-written, each charge once."""
    assert made["tasks"] == made["ideas"]
    assert made["content"] == made["tasks"]
    assert made["images"] == 4 * made["content"]
    assert_nothing_half_written_nor_charged_twice(db, site_id)


def assert_nothing_half_written_nor_charged_twice(db: sa.Engine, site_id: int) -> None:
    """No empty article, no task marked done without its article, and exactly one charge per
    paid output: a second charge for the same work, under any key, would break the counts."""
    c, k, i = t.content.c, t.tasks.c, t.images.c
    with db.connect() as conn:

        def n(table: sa.Table, *where) -> int:
            return conn.execute(
                sa.select(sa.func.count()).select_from(table).where(*where)
            ).scalar_one()

        def charges(stage: int) -> int:
            return n(
                t.credit_ledger,
                t.credit_ledger.c.site_id == site_id,
                t.credit_ledger.c.stage == stage,
                t.credit_ledger.c.amount < 0,
            )

        has_content = sa.exists().where(c.task_id == k.id)
        has_images = sa.exists().where(i.content_id == c.id)
        assert n(t.content, c.site_id == site_id, c.word_count == 0) == 0
        assert n(t.tasks, k.site_id == site_id, k.status == "completed", ~has_content) == 0
        assert charges(2) == n(
            t.clusters, t.clusters.c.site_id == site_id, t.clusters.c.status == "mapped"
        )
        assert charges(4) == n(t.content, c.site_id == site_id)
        assert charges(5) == n(t.content, c.site_id == site_id, has_images)
        assert charges(6) == n(t.images, i.site_id == site_id, i.status == "generated")


def failed_items(db: sa.Engine, run_id: str) -> int:
    """How many of the run's items failed."""
    r = t.stage_item_results.c
    with db.connect() as conn:
        query = sa.select(sa.func.count()).where(r.run_id == run_id, r.outcome == "failed")
        return conn.execute(query).scalar_one()
