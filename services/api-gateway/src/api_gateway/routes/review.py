"""The review gate: a page of the queue in one request, an edit, approve, reject with a reason.

Each change takes the version it was made on (`If-Match`, the ETag `GET content/{id}` gives);
a change made on another version answers 409 (`stale`). Approving or rejecting without
`If-Match` decides on whatever version is current, as bulk review does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Request, Response
from sqlalchemy.engine import Connection

from api_gateway import content_views as cv
from api_gateway import request_body, review
from api_gateway.accounts import Caller
from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.errors import ErrorBody
from api_gateway.params import ItemId, Limit, Offset, SiteId
from api_gateway.routes.content import image_out, tagged_content
from contracts.db import tables as t

router = APIRouter(tags=["review"])

IfMatch = Annotated[
    str | None,
    Header(
        max_length=100,
        description='The version the change was made on (the ETag, e.g. `"3"`); another '
        "answers 409.",
    ),
]
STALE = {
    409: {
        "model": ErrorBody,
        "description": "The article changed since that version, or is not in review.",
    }
}


def _optional(body: dict) -> dict:
    return {"requestBody": {**body["requestBody"], "required": False}}


@dataclass(frozen=True)
class ArticleChange:
    """What every change of an article in review is given: which article, by whom, on which
    version (from `If-Match`; None without it), and the answer that carries the new ETag."""

    request: Request
    response: Response
    caller: Caller
    content_id: int
    sent: int | None

    async def apply(self, change: Callable[[Connection], object]) -> cv.ContentDetail:
        """Makes the change in one transaction; answers the article as it now is."""
        async with self.request.app.state.engine.begin() as conn:
            await conn.run_sync(change)
        return await tagged_content(self.request, self.response, self.caller, self.content_id)


async def article_change(
    request: Request,
    response: Response,
    caller: CallerDep,
    content_id: ItemId,
    if_match: IfMatch = None,
) -> ArticleChange:
    return ArticleChange(request, response, caller, content_id, review.version_of(if_match))


ArticleChangeDep = Annotated[ArticleChange, Depends(article_change)]


@router.patch(
    "/content/{content_id}",
    response_model=cv.ContentDetail,
    openapi_extra=request_body.json_request_body(review.ContentEdit),
    responses={**request_body.REFUSALS, **STALE},
    summary="Edit an article in review (title, body); the AI's original is kept",
)
async def edit_content(article: ArticleChangeDep) -> cv.ContentDetail:
    change = await request_body.read_json(article.request, review.ContentEdit)
    if article.sent is not None and article.sent != change.version:
        raise review.disagree(article.content_id, article.sent, change.version)
    return await article.apply(
        lambda c: review.edit(c, article.caller, article.content_id, change, change.version)
    )


@router.post(
    "/content/{content_id}/approve",
    response_model=cv.ContentDetail,
    responses=STALE,
    summary="Approve content in review",
)
async def approve(article: ArticleChangeDep) -> cv.ContentDetail:
    return await article.apply(
        lambda c: review.decide(c, article.caller, article.content_id, "approved", article.sent)
    )


@router.post(
    "/content/{content_id}/reject",
    response_model=cv.ContentDetail,
    openapi_extra=_optional(request_body.json_request_body(review.Rejection)),
    responses={**request_body.REFUSALS, **STALE},
    summary="Reject content in review, with a reason that is kept",
)
async def reject(article: ArticleChangeDep) -> cv.ContentDetail:
    reason = None
    if request_body.has_body(article.request):
        rejection = await request_body.read_json(article.request, review.Rejection)
        reason = rejection.reason.strip() or None
    return await article.apply(
        lambda c: review.decide(
            c, article.caller, article.content_id, "rejected", article.sent, reason
        )
    )


@router.get(
    "/review_queue",
    response_model=cv.Page[cv.ReviewItem],
    summary="A page of the articles in review, with excerpts, images and keywords",
)
async def review_queue(
    request: Request, caller: CallerDep, site_id: SiteId, limit: Limit = 20, offset: Offset = 0
) -> cv.Page[cv.ReviewItem]:
    c = t.content.c
    where = (c.site_id == site_id, c.status == "review")
    async with request.app.state.engine.connect() as conn:
        await site_of(conn, caller, site_id)
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(t.content).where(*where))
        ).scalar_one()
        rows = (
            await conn.execute(
                sa.select(t.content).where(*where).order_by(c.id).limit(limit).offset(offset)
            )
        ).all()
        ids = [row.id for row in rows]
        images = (
            await conn.execute(
                sa.select(t.images)
                .where(t.images.c.content_id.in_(ids))
                .order_by(t.images.c.content_id, t.images.c.position)
            )
        ).all()
        keywords = await conn.run_sync(lambda sync: review.keywords_of(sync, ids))
    shown = image_out(request)
    by_content: dict[int, list[cv.ImageOut]] = {content_id: [] for content_id in ids}
    for image in images:
        by_content[image.content_id].append(shown(dict(image._mapping)))
    items = [
        cv.ReviewItem(
            **dict(row._mapping),
            excerpt=review.excerpt(row.body),
            images=by_content[row.id],
            keywords=keywords[row.id],
        )
        for row in rows
    ]
    return cv.Page(site_id=site_id, total=total, limit=limit, offset=offset, items=items)
