"""Stage 6: an image prompt becomes a PNG file; when all of an article's images exist, the
article moves from draft to review in the same transaction."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from contracts.db import tables as t
from contracts.values import ItemRef, clip
from stage_workers.ai.base import AIProvider


def relative_image_path(source: Row) -> Path:
    return Path(str(source.site_id), str(source.content_id), f"{source.id}.png")


def write_file_atomically(path: Path, data: bytes) -> None:
    """A crash never leaves half a file: write aside, then rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".png.part")
    partial.write_bytes(data)
    os.replace(partial, path)


class ImagesStep:
    stage = 6
    unit = "item"

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> Row:
        return conn.execute(_IMAGE, {"id": refs[0].id}).one()

    async def produce(self, ai: AIProvider, source: Row) -> bytes:
        return await ai.render_image(source.prompt)

    def write(self, conn: Connection, deps, run_id: str, source: Row, draft: bytes, open_ids):
        relative = relative_image_path(source)
        # Same path on every retry, so a rolled-back attempt's file is simply overwritten.
        write_file_atomically(deps.media_dir / relative, draft)
        conn.execute(_GENERATED, {"row_id": source.id, "path": str(relative)})
        _review_when_complete(conn, source.content_id)
        return {source.id: 1}

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None:
        conn.execute(
            sa.update(t.images)
            .where(t.images.c.id == item_id, t.images.c.status == "pending")
            .values(status="failed", error=clip(error))
        )


def _review_when_complete(conn: Connection, content_id: int) -> None:
    # Images of one article may finish in parallel workers: lock the article first, so the
    # check below (a new statement, a new snapshot) sees the other worker's committed image.
    conn.execute(_LOCK_CONTENT, {"content_id": content_id})
    conn.execute(_TO_REVIEW, {"content_id": content_id})


_images, _content = t.images.c, t.content.c
_ID, _CONTENT_ID = sa.bindparam("id"), sa.bindparam("content_id")
# Built once with bound parameters: building a statement costs more CPU than running it.
_IMAGE = sa.select(_images.id, _images.site_id, _images.content_id, _images.prompt).where(
    _images.id == _ID
)
_GENERATED = (
    sa.update(t.images)
    .where(_images.id == sa.bindparam("row_id"))
    .values(status="generated", file_path=sa.bindparam("path"), error=None)
)
_LOCK_CONTENT = sa.select(_content.id).where(_content.id == _CONTENT_ID).with_for_update()
_TO_REVIEW = (
    sa.update(t.content)
    .where(
        _content.id == _CONTENT_ID,
        _content.status == "draft",
        sa.not_(
            sa.exists().where(_images.content_id == _CONTENT_ID, _images.status != "generated")
        ),
    )
    .values(status="review")
)
