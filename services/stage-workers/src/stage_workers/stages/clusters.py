"""Stage 1: a batch of keywords is one unit: one AI call groups them into clusters, one write
makes the clusters and maps the keywords. A cluster's source_key is its sorted keyword ids, so a
redelivered batch finds the cluster it made before instead of making a second one."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.values import ItemRef
from stage_workers.ai.base import AIProvider, ClusterDraft
from stage_workers.stages.rows import insert_once


def source_key(keyword_ids: list[int]) -> str:
    return "kw:" + ",".join(str(i) for i in sorted(keyword_ids))


@dataclass(frozen=True)
class KeywordsInput:
    site_id: int
    keywords: tuple[ItemRef, ...]  # in the order the AI is given them: its drafts index into it


_clusters, _keywords = t.clusters.c, t.keywords.c
_SITE = sa.select(_keywords.site_id).where(_keywords.id == sa.bindparam("id"))
_CLUSTER = insert_once(t.clusters, "site_id", "source_key")
_FOUND = sa.select(_clusters.id).where(
    _clusters.site_id == sa.bindparam("site"), _clusters.source_key == sa.bindparam("key")
)
_MAPPED = (
    sa.update(t.keywords)
    .where(_keywords.id.in_(sa.bindparam("ids", expanding=True)))
    .values(status="mapped", cluster_id=sa.bindparam("cluster"))
)


class ClustersStep:
    stage = 1
    unit = "batch"

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> KeywordsInput:
        return KeywordsInput(conn.execute(_SITE, {"id": refs[0].id}).scalar_one(), refs)

    async def produce(self, ai: AIProvider, source: KeywordsInput) -> list[ClusterDraft]:
        return await ai.cluster_keywords([ref.title for ref in source.keywords])

    def write(self, conn: Connection, deps, run_id: str, source: KeywordsInput, draft, open_ids):
        """A cluster counts as the output of its first keyword, if this write made it."""
        outputs: dict[int, int] = {}
        for cluster in draft:
            ids = [source.keywords[i].id for i in cluster.members]
            members = [keyword_id for keyword_id in ids if keyword_id in open_ids]
            if members:
                made = _cluster(conn, source.site_id, run_id, cluster, members)
                for n, keyword_id in enumerate(members):
                    outputs[keyword_id] = int(made and n == 0)
        return outputs

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """The keyword stays new: the next run tries it again."""


def _cluster(conn: Connection, site_id: int, run_id: str, draft: ClusterDraft, members) -> bool:
    """Make the members' cluster and map them to it; False if an earlier attempt made it."""
    key = source_key(members)
    row = {"site_id": site_id, "name": draft.name[:200], "description": draft.description}
    cluster_id = conn.execute(
        _CLUSTER, {**row, "source_key": key, "created_by_run_id": run_id}
    ).scalar_one_or_none()
    made = cluster_id is not None
    if not made:
        cluster_id = conn.execute(_FOUND, {"site": site_id, "key": key}).scalar_one()
    conn.execute(_MAPPED, {"ids": members, "cluster": cluster_id})
    return made
