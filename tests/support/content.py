"""Articles written straight into the content tables, as the stage workers leave them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.db import tables as t


@dataclass(frozen=True)
class Article:
    content_id: int
    cluster_id: int
    image_ids: tuple[int, ...]


def add_article(
    db: sa.Engine,
    site_id: int,
    *,
    title: str = "What is SEO",
    body: str = "# What is SEO\n\nSearch engines read **pages**.",
    keywords: tuple[tuple[str, int], ...] = (("seo", 900), ("what is seo", 300)),
    status: str = "review",
    run_id: str | None = None,
    images: int = 2,
) -> Article:
    """An article in `status` with its cluster, idea, task, keywords (text, volume) and
    `images` generated images (no files)."""
    with db.begin() as conn:

        def add(table: sa.Table, **values: object) -> int:
            return conn.execute(
                sa.insert(table).values(site_id=site_id, **values).returning(table.c.id)
            ).scalar_one()

        cluster = add(
            t.clusters, name=title, source_key=f"k{time.time_ns()}", created_by_run_id=run_id
        )
        for text, volume in keywords:
            conn.execute(
                sa.insert(t.keywords).values(
                    site_id=site_id,
                    text=f"{text} {cluster}",
                    volume=volume,
                    cluster_id=cluster,
                    status="mapped",
                )
            )
        idea = add(t.content_ideas, cluster_id=cluster, title=title, position=0)
        task = add(t.tasks, idea_id=idea, title=f"Write: {title}")
        content = add(
            t.content,
            task_id=task,
            title=title,
            body=body,
            word_count=len(body.split()),
            status=status,
            created_by_run_id=run_id,
        )
        image_ids = tuple(
            add(
                t.images,
                content_id=content,
                kind="featured" if n == 0 else "in_article",
                position=n,
                prompt=f"picture {n}",
                status="generated",
                url=f"https://images.example/{content}/{n}.png",
            )
            for n in range(images)
        )
    return Article(content, cluster, image_ids)
