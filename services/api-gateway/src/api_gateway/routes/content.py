"""Listings of what the stages made, content review, and the image files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse

from api_gateway import article_html, review
from api_gateway import content_views as cv
from api_gateway.accounts import Caller
from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.errors import not_found
from api_gateway.params import ItemId, Limit, Offset, RunId, SiteId
from contracts.db import tables as t

router = APIRouter(tags=["content"])


KeywordStatus = Annotated[cv.KeywordStatus | None, Query(description="Only this status.")]
ClusterStatus = Annotated[cv.ClusterStatus | None, Query(description="Only this status.")]
IdeaStatus = Annotated[cv.IdeaStatus | None, Query(description="Only this status.")]
TaskStatus = Annotated[cv.TaskStatus | None, Query(description="Only this status.")]
ContentStatus = Annotated[cv.ContentStatus | None, Query(description="Only this status.")]
ImageStatus = Annotated[cv.ImageStatus | None, Query(description="Only this status.")]


Search = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="Only rows whose text contains this."),
]
MadeBy = Annotated[RunId | None, Query(description="Only rows this run made.")]


@dataclass(frozen=True)
class Listing:
    """What every listing is asked: whose site, which text, which page."""

    request: Request
    caller: Caller
    site_id: int
    q: str | None
    limit: int
    offset: int

    async def page(self, table: str, status, run_id, build: Callable[[dict], Any]) -> cv.Page:
        async with self.request.app.state.engine.connect() as conn:
            await site_of(conn, self.caller, self.site_id)
            total, rows = await cv.page(
                conn, table, self.site_id, status, self.limit, self.offset, run_id, self.q
            )
        items = [build(row) for row in rows]
        return cv.Page(
            site_id=self.site_id, total=total, limit=self.limit, offset=self.offset, items=items
        )


async def listing(
    request: Request,
    caller: CallerDep,
    site_id: SiteId,
    q: Search = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Listing:
    return Listing(request, caller, site_id, q, limit, offset)


ListingDep = Annotated[Listing, Depends(listing)]


def image_out(request: Request) -> Callable[[dict], cv.ImageOut]:
    def build(row: dict) -> cv.ImageOut:
        url = row.get("url")
        if row.get("file_path"):
            url = str(request.url_for("get_media", image_id=row["id"]))
        return cv.ImageOut(**{**row, "url": url})

    return build


@router.get("/keywords", response_model=cv.Page[cv.KeywordOut], summary="Keywords of a site")
async def list_keywords(listing: ListingDep, status: KeywordStatus = None):
    return await listing.page("keywords", status, None, cv.KeywordOut.model_validate)


@router.get("/clusters", response_model=cv.Page[cv.ClusterOut], summary="Clusters of a site")
async def list_clusters(listing: ListingDep, status: ClusterStatus = None, run_id: MadeBy = None):
    return await listing.page("clusters", status, run_id, cv.ClusterOut.model_validate)


@router.get("/ideas", response_model=cv.Page[cv.IdeaOut], summary="Content ideas of a site")
async def list_ideas(listing: ListingDep, status: IdeaStatus = None, run_id: MadeBy = None):
    return await listing.page("content_ideas", status, run_id, cv.IdeaOut.model_validate)


@router.get("/tasks", response_model=cv.Page[cv.TaskOut], summary="Writing tasks of a site")
async def list_tasks(listing: ListingDep, status: TaskStatus = None, run_id: MadeBy = None):
    return await listing.page("tasks", status, run_id, cv.TaskOut.model_validate)


@router.get("/content", response_model=cv.Page[cv.ContentSummary], summary="Articles of a site")
async def list_content(listing: ListingDep, status: ContentStatus = None, run_id: MadeBy = None):
    return await listing.page("content", status, run_id, cv.ContentSummary.model_validate)


@router.get("/images", response_model=cv.Page[cv.ImageOut], summary="Images of a site")
async def list_images(listing: ListingDep, status: ImageStatus = None, run_id: MadeBy = None):
    return await listing.page("images", status, run_id, image_out(listing.request))


def _owned(table: sa.Table, item_id: int, account_id: int) -> sa.Select:
    """A row of `table` by id, only if its site belongs to the account."""
    return (
        sa.select(table)
        .join(t.sites, t.sites.c.id == table.c.site_id)
        .where(table.c.id == item_id, t.sites.c.account_id == account_id)
    )


@router.get(
    "/content/{content_id}",
    response_model=cv.ContentDetail,
    responses={200: {"headers": {"ETag": {"description": "The version, for `If-Match`."}}}},
    summary="One article, with its images and keywords",
)
async def get_content(
    request: Request, response: Response, caller: CallerDep, content_id: ItemId
) -> cv.ContentDetail:
    return await tagged_content(request, response, caller, content_id)


async def tagged_content(
    request: Request, response: Response, caller, content_id: int
) -> cv.ContentDetail:
    """The article, and its version as the answer's ETag (for `If-Match`)."""
    detail = await content_detail(request, caller, content_id)
    response.headers["ETag"] = review.etag(detail.version)
    return detail


async def content_detail(request: Request, caller, content_id: int) -> cv.ContentDetail:
    async with request.app.state.engine.connect() as conn:
        row = (await conn.execute(_owned(t.content, content_id, caller.account_id))).first()
        if row is None:
            raise not_found(f"content {content_id}")
        images = await conn.execute(
            sa.select(t.images)
            .where(t.images.c.content_id == content_id)
            .order_by(t.images.c.position)
        )
        built = [image_out(request)(dict(image._mapping)) for image in images]
        keywords = await conn.run_sync(lambda c: review.keywords_of(c, [content_id]))
    pictures = [article_html.Picture(i.id, i.kind, i.url, i.prompt) for i in built]
    return cv.ContentDetail(
        **dict(row._mapping),
        body_html=article_html.render(row.body, pictures),
        images=built,
        keywords=keywords[content_id],
    )


@router.get(
    "/media/{image_id}",
    name="get_media",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The image file.",
        }
    },
    summary="An image file",
)
async def get_media(request: Request, caller: CallerDep, image_id: ItemId) -> FileResponse:
    async with request.app.state.engine.connect() as conn:
        row = (await conn.execute(_owned(t.images, image_id, caller.account_id))).first()
    path = _media_path(request.app.state.settings.media_dir, row.file_path if row else None)
    if path is None:
        raise not_found(f"image file {image_id}")
    return FileResponse(path, media_type="image/png")


def _media_path(media_dir: Path, stored: str | None) -> Path | None:
    """The stored path, relative to MEDIA_DIR or absolute, only if it stays inside MEDIA_DIR."""
    if not stored:
        return None
    root = media_dir.resolve()
    path = (root / stored).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None
