"""Stage 3 (local, no AI): each idea becomes one queued task; the idea is then queued."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contracts.db import tables as t
from contracts.values import ItemRef
from stage_workers.ai.base import AIProvider
from stage_workers.stages.rows import insert_once, inserted, set_status

_ideas = t.content_ideas.c
_IDEA = sa.select(_ideas.id, _ideas.site_id, _ideas.title, _ideas.outline).where(
    _ideas.id == sa.bindparam("id")
)
_TASK = insert_once(t.tasks, "idea_id")
_QUEUED = set_status(t.content_ideas, "queued")


class TasksStep:
    stage = 3
    unit = "item"

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> Row:
        return conn.execute(_IDEA, {"id": refs[0].id}).one()

    async def produce(self, ai: AIProvider, source: Row) -> Row:
        return source

    def write(self, conn: Connection, deps, run_id: str, source: Row, draft, open_ids):
        task = {
            "site_id": source.site_id,
            "idea_id": source.id,
            "title": source.title,
            "brief": source.outline,
            "created_by_run_id": run_id,
        }
        created = inserted(conn, _TASK, [task])
        conn.execute(_QUEUED, {"row_id": source.id})
        return {source.id: created}

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """Nothing to mark: a local step only fails on a bug, and the idea stays new."""
