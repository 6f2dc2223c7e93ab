"""The items of a stage as people see them (id and title), and whether one still needs work.

"Needs work" is the stage picker's own rule from contracts.db.pending, applied to one row."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.db.pending import PICKERS
from contracts.values import ItemRef, clip


def _titles(stage: int) -> sa.Select:
    match stage:
        case 1:
            return sa.select(t.keywords.c.id, t.keywords.c.text.label("title"))
        case 2:
            return sa.select(t.clusters.c.id, t.clusters.c.name.label("title"))
        case 3:
            return sa.select(t.content_ideas.c.id, t.content_ideas.c.title)
        case 4:
            return sa.select(t.tasks.c.id, t.tasks.c.title)
        case 5 | 7:
            return sa.select(t.content.c.id, t.content.c.title)
        case 6:
            i, c = t.images.c, t.content.c
            title = c.title + " – image " + sa.cast(i.position, sa.Text)
            return sa.select(i.id, title.label("title")).join_from(
                t.images, t.content, i.content_id == c.id
            )
    raise ValueError(f"no stage {stage}")


def pending_refs(conn: Connection, stage: int, site_id: int) -> list[ItemRef]:
    """What the stage picks now, in id order."""
    table, rule = PICKERS[stage]
    rows = conn.execute(_titles(stage).where(rule(site_id)).order_by(table.c.id))
    return [ItemRef(id=row.id, title=row.title) for row in rows]


# The per-item statements below are built once per stage with bound parameters: building one
# costs SQLAlchemy far more CPU than executing it (its cache key is generated afresh each time).
_IDS = sa.bindparam("ids", expanding=True)
_SITE = sa.bindparam("site_id")


@cache
def _refs_statement(stage: int) -> sa.Select:
    table, _ = PICKERS[stage]
    return _titles(stage).where(table.c.id.in_(_IDS), table.c.site_id == _SITE)


@cache
def _needing_statement(stage: int) -> sa.Select:
    table, rule = PICKERS[stage]
    return sa.select(table.c.id).where(table.c.id.in_(_IDS), rule(_SITE))


@cache
def _lock_statement(stage: int) -> sa.Select:
    table, _ = PICKERS[stage]
    return sa.select(table.c.id).where(table.c.id.in_(_IDS)).order_by(table.c.id).with_for_update()


def refs_of(conn: Connection, stage: int, site_id: int, item_ids: Sequence[int]) -> list[ItemRef]:
    """The site's items among `item_ids`, in the order given; unknown ids are left out."""
    rows = conn.execute(_refs_statement(stage), {"ids": list(item_ids), "site_id": site_id})
    by_id = {row.id: row.title for row in rows}
    return [ItemRef(id=i, title=by_id[i]) for i in item_ids if i in by_id]


def needing_work(conn: Connection, stage: int, site_id: int, item_ids: Sequence[int]) -> set[int]:
    """Those of `item_ids` the stage's picker would still take."""
    rows = conn.execute(_needing_statement(stage), {"ids": list(item_ids), "site_id": site_id})
    return set(rows.scalars())


def lock_needing_work(
    conn: Connection, stage: int, site_id: int, item_ids: Sequence[int]
) -> set[int]:
    """Lock the input rows (in id order, so two workers cannot deadlock), then re-check with a
    fresh statement: after waiting on a lock it sees what the other worker committed (a locking
    read alone would not re-run the picker's EXISTS)."""
    ids = sorted(set(item_ids))
    conn.execute(_lock_statement(stage), {"ids": ids})
    return needing_work(conn, stage, site_id, ids)


_failures = insert(t.item_failures)
_COUNT_FAILURE = _failures.on_conflict_do_update(
    index_elements=["stage", "item_id"],
    set_={
        "failures": t.item_failures.c.failures + 1,
        "last_error": _failures.excluded.last_error,
        "last_run_id": _failures.excluded.last_run_id,
        "updated_at": sa.func.now(),
    },
)


def count_failure(
    conn: Connection, stage: int, site_id: int, item_id: int, run_id: str, error: str
) -> None:
    """One more failure of the item, across runs; at the budget (contracts.db.pending) the
    stage stops picking it. Called once per item and run: a redelivery finds the item's result
    first."""
    conn.execute(
        _COUNT_FAILURE,
        {
            "stage": stage,
            "item_id": item_id,
            "site_id": site_id,
            "last_error": clip(error),
            "last_run_id": run_id,
        },
    )
