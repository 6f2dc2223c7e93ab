"""Stage 2: a cluster becomes a few content ideas; the cluster is then mapped."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.values import ItemRef
from stage_workers.ai.base import AIProvider, IdeaDraft
from stage_workers.stages.rows import insert_once, inserted, set_status


@dataclass(frozen=True)
class ClusterInput:
    id: int
    site_id: int
    name: str
    keywords: list[str]


_clusters, _keywords = t.clusters.c, t.keywords.c
_CLUSTER = sa.select(_clusters.id, _clusters.site_id, _clusters.name).where(
    _clusters.id == sa.bindparam("id")
)
_KEYWORDS = (
    sa.select(_keywords.text)
    .where(_keywords.cluster_id == sa.bindparam("id"))
    .order_by(_keywords.id)
)
_IDEA = insert_once(t.content_ideas, "cluster_id", "position")
_MAPPED = set_status(t.clusters, "mapped")


class IdeasStep:
    stage = 2
    unit = "item"

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> ClusterInput:
        row = conn.execute(_CLUSTER, {"id": refs[0].id}).one()
        keywords = conn.execute(_KEYWORDS, {"id": row.id}).scalars()
        return ClusterInput(row.id, row.site_id, row.name, list(keywords))

    async def produce(self, ai: AIProvider, source: ClusterInput) -> list[IdeaDraft]:
        return await ai.write_ideas(source.name, source.keywords)

    def write(self, conn: Connection, deps, run_id: str, source: ClusterInput, draft, open_ids):
        rows = [
            {
                "site_id": source.site_id,
                "cluster_id": source.id,
                "title": idea.title,
                "outline": idea.outline,
                "position": position,
                "created_by_run_id": run_id,
            }
            for position, idea in enumerate(draft)
        ]
        created = inserted(conn, _IDEA, rows)
        conn.execute(_MAPPED, {"row_id": source.id})
        return {source.id: created}

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """The cluster stays new: the next run tries it again."""
