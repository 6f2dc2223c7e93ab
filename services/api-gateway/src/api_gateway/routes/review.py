"""The review gate: a page of the queue in one request, an edit, approve, reject with a reason.

Each change takes the version it was made on (`If-Match`, the ETag `GET content/{id}` gives);
a change made on another version answers 409 (`stale`). Approving or rejecting without
`If-Match` decides on whatever version is current, as bulk review does.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Header, Request, Response

from api_gateway import content_views as cv
from api_gateway import request_body, review
from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.errors import ErrorBody
from api_gateway.params import ItemId, Limit, Offset, SiteId
from api_gateway.routes.content import content_detail, image_out
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


async def _changed(request: Request, response: Response, caller, content_id: int):
    detail = await content_detail(request, caller, content_id)
    response.headers["ETag"] = review.etag(detail.version)
    return detail


@router.patch(
    "/content/{content_id}",
    response_model=cv.ContentDetail,
    openapi_extra=request_body.json_request_body(review.ContentEdit),
    responses={**request_body.REFUSALS, **STALE},
    summary="Edit an article in review (title, body); the AI's original is kept",
)
async def edit_content(
    request: Request,
    response: Response,
    caller: CallerDep,
    content_id: ItemId,
    if_match: IfMatch = None,
) -> cv.ContentDetail:
    change = await request_body.read_json(request, review.ContentEdit)
    tagged = review.version_of(if_match)
    if tagged is not None and tagged != change.version:
        raise review.disagree(content_id, tagged, change.version)
    async with request.app.state.engine.begin() as conn:
        await conn.run_sync(lambda c: review.edit(c, caller, content_id, change, change.version))
    return await _changed(request, response, caller, content_id)


@router.post(
    "/content/{content_id}/approve",
    response_model=cv.ContentDetail,
    responses=STALE,
    summary="Approve content in review",
)
async def approve(
    request: Request,
    response: Response,
    caller: CallerDep,
    content_id: ItemId,
    if_match: IfMatch = None,
) -> cv.ContentDetail:
    sent = review.version_of(if_match)
    async with request.app.state.engine.begin() as conn:
        await conn.run_sync(lambda c: review.decide(c, caller, content_id, "approved", sent))
    return await _changed(request, response, caller, content_id)


@router.post(
    "/content/{content_id}/reject",
    response_model=cv.ContentDetail,
    openapi_extra=_optional(request_body.json_request_body(review.Rejection)),
    responses={**request_body.REFUSALS, **STALE},
    summary="Reject content in review, with a reason that is kept",
)
async def reject(
    request: Request,
    response: Response,
    caller: CallerDep,
    content_id: ItemId,
    if_match: IfMatch = None,
) -> cv.ContentDetail:
    reason = None
    if request_body.has_body(request):
        reason = (await request_body.read_json(request, review.Rejection)).reason.strip() or None
    sent = review.version_of(if_match)
    async with request.app.state.engine.begin() as conn:
        await conn.run_sync(
            lambda c: review.decide(c, caller, content_id, "rejected", sent, reason)
        )
    return await _changed(request, response, caller, content_id)


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
