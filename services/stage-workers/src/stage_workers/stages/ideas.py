"""Stage 2: a cluster becomes a few content ideas; the cluster is then mapped."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.stages import CREDITS_PER_CLUSTER
from stage_workers.ai.base import AIProvider, IdeaDraft
from stage_workers.stages.rows import inserted


@dataclass(frozen=True)
class ClusterInput:
    id: int
    site_id: int
    name: str
    keywords: list[str]


class IdeasStep:
    stage = 2
    credits = CREDITS_PER_CLUSTER

    def load(self, conn: Connection, item_id: int) -> ClusterInput:
        c = t.clusters.c
        row = conn.execute(sa.select(c.id, c.site_id, c.name).where(c.id == item_id)).one()
        keywords = conn.execute(
            sa.select(t.keywords.c.text)
            .where(t.keywords.c.cluster_id == item_id)
            .order_by(t.keywords.c.id)
        ).scalars()
        return ClusterInput(row.id, row.site_id, row.name, list(keywords))

    async def produce(self, ai: AIProvider, source: ClusterInput) -> list[IdeaDraft]:
        return await ai.write_ideas(source.name, source.keywords)

    def write(self, conn: Connection, deps, run_id: str, source: ClusterInput, draft) -> int:
        created = 0
        for position, idea in enumerate(draft):
            created += inserted(
                conn,
                insert(t.content_ideas)
                .values(
                    site_id=source.site_id,
                    cluster_id=source.id,
                    title=idea.title,
                    outline=idea.outline,
                    position=position,
                    created_by_run_id=run_id,
                )
                .on_conflict_do_nothing(index_elements=["cluster_id", "position"]),
            )
        conn.execute(
            sa.update(t.clusters).where(t.clusters.c.id == source.id).values(status="mapped")
        )
        return created

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """The cluster stays new: the next run tries it again."""
