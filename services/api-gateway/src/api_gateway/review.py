"""The review gate: what a reviewer reads (an article with its images, the keywords it covers,
the run that made it), edits (the AI's original kept, a version that refuses a stale edit) and
decides (approve, or reject with a reason).

Every reviewer's change adds one to the article's `version`, which is its ETag: an edit or a
decision sent with `If-Match` of another version is refused with 409, never merged; so is any
change to an article no longer in review (approved or rejected meanwhile, or still a draft).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.engine import Connection, Row

from api_gateway.accounts import Caller
from api_gateway.errors import ApiError, not_found
from contracts.db import tables as t
from contracts.envelope import utcnow
from contracts.values import REASON_CHARS, word_count

EXCERPT_CHARS = 400
MAX_TITLE = 300
MAX_BODY = 200_000

_c = t.content.c


class ContentEdit(BaseModel):
    """A reviewer's edit: a new title, a new body, or both."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "anyOf": [
                {"required": ["title"], "properties": {"title": {"type": "string"}}},
                {"required": ["body"], "properties": {"body": {"type": "string"}}},
            ]
        },
    }

    title: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TITLE,
        pattern=r"\S",
        description="New title (not only spaces).",
    )
    body: str | None = Field(
        None, min_length=1, max_length=MAX_BODY, description="New body, in Markdown."
    )
    version: int = Field(
        ge=1,
        le=2**31 - 1,
        description="The version the edit was made on (`version` of what you read, or its "
        "ETag); another answers 409.",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> ContentEdit:
        if self.title is None and self.body is None:
            raise ValueError("send a title, a body or both")
        return self


class Rejection(BaseModel):
    model_config = {"extra": "forbid"}

    reason: str = Field(
        min_length=1, max_length=REASON_CHARS, description="Why: kept with the article and shown."
    )


def etag(version: int) -> str:
    return f'"{version}"'


ETAG = re.compile(r'(?:W/)?"([0-9]{1,10})"')
NO_VERSION = 0  # what an If-Match that names no version of ours stands for: it matches none


def version_of(if_match: str | None) -> int | None:
    """The version in `If-Match` (`"3"` or `W/"3"`); a tag this API never gave matches no
    version, so the change is refused as stale (409), as HTTP refuses an unmatched If-Match."""
    if if_match is None:
        return None
    found = ETAG.fullmatch(if_match.strip())
    return int(found.group(1)) if found else NO_VERSION


def stale(content_id: int, sent: int, current: int) -> ApiError:
    return _stale(
        f"content {content_id} changed since version {sent}: it is version {current} now; "
        "read it again and redo the change"
    )


def disagree(content_id: int, tagged: int, stated: int) -> ApiError:
    return _stale(
        f"If-Match names version {tagged} of content {content_id}, the body version {stated}: "
        "send the one you read"
    )


def _stale(detail: str) -> ApiError:
    return ApiError(409, detail, code="stale", field="if-match")


def owned(caller: Caller, content_id: int) -> sa.Select:
    return (
        sa.select(t.content)
        .join(t.sites, t.sites.c.id == _c.site_id)
        .where(_c.id == content_id, t.sites.c.account_id == caller.account_id)
        .with_for_update(of=t.content)
    )


def _lock(conn: Connection, caller: Caller, content_id: int, sent: int | None) -> Row:
    """The article, locked for the change, if the caller's account owns it, it is in review and
    `sent` (when given) is its version."""
    row = conn.execute(owned(caller, content_id)).first()
    if row is None:
        raise not_found(f"content {content_id}")
    if sent is not None and sent != row.version:
        raise stale(content_id, sent, row.version)
    if row.status != "review":  # a state the change conflicts with, as a stale version is
        raise ApiError(
            409,
            f"content {content_id} is {row.status}; only content in review can be changed",
            code="not_allowed",
            status=row.status,
        )
    return row


def edit(conn: Connection, caller: Caller, content_id: int, change: ContentEdit, sent: int) -> None:
    row = _lock(conn, caller, content_id, sent)
    values: dict = {"version": row.version + 1, "edited_at": utcnow(), "edited_by": caller.user_id}
    if row.original_title is None:  # the first edit keeps what the AI wrote
        values |= {"original_title": row.title, "original_body": row.body}
    if change.title is not None:
        values["title"] = change.title.strip()
    if change.body is not None:
        values |= {"body": change.body, "word_count": word_count(change.body)}
    conn.execute(sa.update(t.content).where(_c.id == content_id).values(**values))


def decide(
    conn: Connection,
    caller: Caller,
    content_id: int,
    verdict: str,
    sent: int | None,
    reason: str | None = None,
) -> None:
    row = _lock(conn, caller, content_id, sent)
    conn.execute(
        sa.update(t.content)
        .where(_c.id == content_id)
        .values(
            status=verdict,
            reviewed_at=utcnow(),
            reviewed_by=caller.user_id,
            reject_reason=reason,
            version=row.version + 1,
        )
    )


def keywords_of(conn: Connection, content_ids: list[int]) -> dict[int, list[str]]:
    """The keywords each article covers: those of the cluster its idea came from."""
    if not content_ids:
        return {}
    query = (
        sa.select(_c.id, t.keywords.c.text)
        .join(t.tasks, t.tasks.c.id == _c.task_id)
        .join(t.content_ideas, t.content_ideas.c.id == t.tasks.c.idea_id)
        .join(t.keywords, t.keywords.c.cluster_id == t.content_ideas.c.cluster_id)
        .where(_c.id.in_(content_ids))
        .order_by(_c.id, t.keywords.c.volume.desc(), t.keywords.c.id)
    )
    found: dict[int, list[str]] = {content_id: [] for content_id in content_ids}
    for content_id, text in conn.execute(query):
        found[content_id].append(text)
    return found


def excerpt(markdown: str, chars: int = EXCERPT_CHARS) -> str:
    """The body's start as plain words: Markdown marks dropped, cut at a word."""
    words = []
    for line in markdown.splitlines():
        line = line.strip().lstrip("#>*-+ ").strip()
        if line and not line.startswith("!["):
            words.extend(line.replace("**", "").replace("__", "").split())
    text = " ".join(words)
    if len(text) <= chars:
        return text
    return text[:chars].rsplit(" ", 1)[0] + "…"
