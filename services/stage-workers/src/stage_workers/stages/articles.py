"""Stage 4: a queued task becomes a draft article; the task is then completed."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.values import ItemRef
from stage_workers.ai.base import AIProvider, ArticleDraft
from stage_workers.stages.rows import insert_once, inserted, set_status


@dataclass(frozen=True)
class TaskInput:
    id: int
    site_id: int
    title: str
    brief: str
    keywords: list[str]


_tasks, _ideas, _keywords = t.tasks.c, t.content_ideas.c, t.keywords.c
_TASK = (
    sa.select(_tasks.id, _tasks.site_id, _tasks.title, _tasks.brief, _ideas.cluster_id)
    .join_from(t.tasks, t.content_ideas, _tasks.idea_id == _ideas.id)
    .where(_tasks.id == sa.bindparam("id"))
)
_KEYWORDS = (
    sa.select(_keywords.text)
    .where(_keywords.cluster_id == sa.bindparam("cluster"))
    .order_by(_keywords.id)
    .limit(12)
)
_CONTENT = insert_once(t.content, "task_id")
_COMPLETED = set_status(t.tasks, "completed")


class ArticlesStep:
    stage = 4
    unit = "item"

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> TaskInput:
        row = conn.execute(_TASK, {"id": refs[0].id}).one()
        keywords = conn.execute(_KEYWORDS, {"cluster": row.cluster_id}).scalars()
        return TaskInput(row.id, row.site_id, row.title, row.brief, list(keywords))

    async def produce(self, ai: AIProvider, source: TaskInput) -> ArticleDraft:
        return await ai.write_article(source.title, source.brief, source.keywords)

    def write(self, conn: Connection, deps, run_id: str, source: TaskInput, draft, open_ids):
        article = {
            "site_id": source.site_id,
            "task_id": source.id,
            "title": draft.title or source.title,
            "body": draft.markdown,
            "word_count": draft.word_count,
            "created_by_run_id": run_id,
        }
        created = inserted(conn, _CONTENT, [article])
        conn.execute(_COMPLETED, {"row_id": source.id})
        return {source.id: created}

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """The task stays queued: the next run tries it again."""
