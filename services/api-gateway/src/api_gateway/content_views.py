"""What the stages made, as pages of rows scoped to one site."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

import sqlalchemy as sa
from pydantic import AliasChoices, BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.db import tables as t

KeywordStatus = Literal[t.KEYWORD_STATUSES]  # type: ignore[valid-type]
ClusterStatus = Literal[t.CLUSTER_STATUSES]  # type: ignore[valid-type]
IdeaStatus = Literal[t.IDEA_STATUSES]  # type: ignore[valid-type]
TaskStatus = Literal[t.TASK_STATUSES]  # type: ignore[valid-type]
ContentStatus = Literal[t.CONTENT_STATUSES]  # type: ignore[valid-type]
ImageStatus = Literal[t.IMAGE_STATUSES]  # type: ignore[valid-type]
ImageKind = Literal[t.IMAGE_KINDS]  # type: ignore[valid-type]
Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    site_id: int
    total: int
    limit: int
    offset: int
    items: list[Item]


class KeywordOut(BaseModel):
    id: int
    text: str
    volume: int
    difficulty: int | None = Field(description="0-100; null when the import did not give one.")
    disabled: bool
    status: KeywordStatus
    cluster_id: int | None
    created_at: datetime


class ClusterOut(BaseModel):
    id: int
    name: str
    description: str
    status: ClusterStatus
    keyword_count: int
    created_at: datetime


class IdeaOut(BaseModel):
    id: int
    cluster_id: int
    title: str
    outline: str
    status: IdeaStatus
    created_at: datetime


class TaskOut(BaseModel):
    id: int
    idea_id: int
    title: str
    brief: str
    status: TaskStatus
    created_at: datetime


class ContentSummary(BaseModel):
    id: int
    task_id: int
    title: str
    word_count: int
    status: ContentStatus
    run_id: str | None = Field(
        validation_alias=AliasChoices("run_id", "created_by_run_id"),
        description="The run that wrote it.",
    )
    version: int = Field(
        description="Adds one with every reviewer's change; the ETag (`If-Match`) of edits."
    )
    edited_at: datetime | None = Field(description="When a reviewer last edited it.")
    reviewed_at: datetime | None
    reject_reason: str | None = Field(description="The reviewer's reason, when rejected.")
    created_at: datetime
    updated_at: datetime


class ImageOut(BaseModel):
    id: int
    content_id: int
    kind: ImageKind
    position: int
    prompt: str
    status: ImageStatus
    url: str | None
    error: str | None
    created_at: datetime


class ContentDetail(ContentSummary):
    body: str = Field(description="Markdown, as the reviewer left it (else as written).")
    body_html: str = Field(
        description="The body rendered as HTML safe to show as it is: raw HTML escaped, links "
        "to http, https or mailto only, images only the article's own, which are placed in it "
        "(the featured one first, the k-th other at the end of the k-th `##` section)."
    )
    images: list[ImageOut]
    keywords: list[str] = Field(description="The keywords it covers, by volume.")
    edited_by: int | None = Field(description="The user who last edited it.")
    original_title: str | None = Field(description="The AI's title, kept by the first edit.")
    original_body: str | None = Field(description="The AI's body, kept by the first edit.")


class ReviewItem(ContentSummary):
    excerpt: str = Field(description="The body's first words, as plain text.")
    images: list[ImageOut]
    keywords: list[str] = Field(description="The keywords it covers, by volume.")


def _keyword_count() -> sa.ScalarSelect:
    return (
        sa.select(sa.func.count())
        .where(t.keywords.c.cluster_id == t.clusters.c.id)
        .scalar_subquery()
        .label("keyword_count")
    )


LISTED = {
    "keywords": (t.keywords, ()),
    "clusters": (t.clusters, (_keyword_count,)),
    "content_ideas": (t.content_ideas, ()),
    "tasks": (t.tasks, ()),
    "content": (t.content, ()),
    "images": (t.images, ()),
}
# What `q` searches in each listing (case-insensitive, anywhere in the text).
SEARCHED = {
    "keywords": ("text",),
    "clusters": ("name", "description"),
    "content_ideas": ("title", "outline"),
    "tasks": ("title", "brief"),
    "content": ("title", "body"),
    "images": ("prompt",),
}
LONG_TEXT = frozenset(("body", "original_body"))  # left out of listings


def contains(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def page(
    conn: AsyncConnection,
    table_name: str,
    site_id: int,
    status: str | None,
    limit: int,
    offset: int,
    run_id: str | None = None,
    q: str | None = None,
) -> tuple[int, list[dict]]:
    table, extras = LISTED[table_name]
    where = [table.c.site_id == site_id]
    if status is not None:
        where.append(table.c.status == status)
    if run_id is not None:
        where.append(table.c.created_by_run_id == run_id)
    if q:
        pattern = contains(q)
        where.append(sa.or_(*(table.c[name].ilike(pattern) for name in SEARCHED[table_name])))
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
    ).scalar_one()
    columns = [c for c in table.c if c.name not in LONG_TEXT] + [extra() for extra in extras]
    rows = await conn.execute(
        sa.select(*columns).where(*where).order_by(table.c.id).limit(limit).offset(offset)
    )
    return total, [dict(row._mapping) for row in rows]
