"""Stage 5: a draft article gets its image prompts (one featured first, then in-article ones)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contracts.db import tables as t
from contracts.stages import IMAGES_PER_CONTENT
from contracts.values import ItemRef
from stage_workers.ai.base import AIProvider, PromptDraft
from stage_workers.stages.rows import insert_once, inserted


def featured_first(prompts: list[PromptDraft]) -> list[PromptDraft]:
    """Exactly one featured image, at position 0, whatever order the model answered in."""
    featured = [p for p in prompts if p.kind == "featured"][:1]
    rest = [PromptDraft("in_article", p.prompt) for p in prompts if p not in featured]
    if not featured and rest:
        featured, rest = [PromptDraft("featured", rest[0].prompt)], rest[1:]
    return (featured + rest)[:IMAGES_PER_CONTENT]


_content = t.content.c
_CONTENT = sa.select(_content.id, _content.site_id, _content.title, _content.body).where(
    _content.id == sa.bindparam("id")
)
_IMAGE = insert_once(t.images, "content_id", "position")


class PromptsStep:
    stage = 5
    unit = "item"

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> Row:
        return conn.execute(_CONTENT, {"id": refs[0].id}).one()

    async def produce(self, ai: AIProvider, source: Row) -> list[PromptDraft]:
        return featured_first(await ai.write_image_prompts(source.title, source.body))

    def write(self, conn: Connection, deps, run_id: str, source: Row, draft, open_ids):
        rows = [
            {
                "site_id": source.site_id,
                "content_id": source.id,
                "kind": prompt.kind,
                "position": position,
                "prompt": prompt.prompt,
                "created_by_run_id": run_id,
            }
            for position, prompt in enumerate(draft)
        ]
        return {source.id: inserted(conn, _IMAGE, rows)}

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        """The content stays a draft without images: the next run tries it again."""
