"""Stage 3 (local, no AI): each idea becomes one queued task; the idea is then queued."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Row

from contracts.db import tables as t
from stage_workers.ai.base import AIProvider
from stage_workers.stages.rows import inserted


class TasksStep:
    stage = 3
    credits = 0

    def load(self, conn: Connection, item_id: int) -> Row:
        i = t.content_ideas.c
        return conn.execute(
            sa.select(i.id, i.site_id, i.title, i.outline).where(i.id == item_id)
        ).one()

    async def produce(self, ai: AIProvider, source: Row) -> Row:
        return source

    def write(self, conn: Connection, deps, run_id: str, source: Row, draft: Row) -> int:
        created = inserted(
            conn,
            insert(t.tasks)
            .values(
                site_id=source.site_id,
                idea_id=source.id,
                title=source.title,
                brief=source.outline,
                created_by_run_id=run_id,
            )
            .on_conflict_do_nothing(index_elements=["idea_id"]),
        )
        conn.execute(
            sa.update(t.content_ideas)
            .where(t.content_ideas.c.id == source.id)
            .values(status="queued")
        )
        return created

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """Nothing to mark: a local step only fails on a bug, and the idea stays new."""
