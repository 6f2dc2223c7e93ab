"""Stage 4: a queued task becomes a draft article; the task is then completed."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.stages import CREDITS_PER_CONTENT
from stage_workers.ai.base import AIProvider, ArticleDraft
from stage_workers.stages.rows import inserted


@dataclass(frozen=True)
class TaskInput:
    id: int
    site_id: int
    title: str
    brief: str
    keywords: list[str]


class ArticlesStep:
    stage = 4
    credits = CREDITS_PER_CONTENT

    def load(self, conn: Connection, item_id: int) -> TaskInput:
        k, i = t.tasks.c, t.content_ideas.c
        row = conn.execute(
            sa.select(k.id, k.site_id, k.title, k.brief, i.cluster_id)
            .join_from(t.tasks, t.content_ideas, k.idea_id == i.id)
            .where(k.id == item_id)
        ).one()
        keywords = conn.execute(
            sa.select(t.keywords.c.text)
            .where(t.keywords.c.cluster_id == row.cluster_id)
            .order_by(t.keywords.c.id)
            .limit(12)
        ).scalars()
        return TaskInput(row.id, row.site_id, row.title, row.brief, list(keywords))

    async def produce(self, ai: AIProvider, source: TaskInput) -> ArticleDraft:
        return await ai.write_article(source.title, source.brief, source.keywords)

    def write(self, conn: Connection, deps, run_id: str, source: TaskInput, draft) -> int:
        created = inserted(
            conn,
            insert(t.content)
            .values(
                site_id=source.site_id,
                task_id=source.id,
                title=draft.title or source.title,
                body=draft.markdown,
                word_count=draft.word_count,
                created_by_run_id=run_id,
            )
            .on_conflict_do_nothing(index_elements=["task_id"]),
        )
        conn.execute(sa.update(t.tasks).where(t.tasks.c.id == source.id).values(status="completed"))
        return created

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """The task stays queued: the next run tries it again."""
