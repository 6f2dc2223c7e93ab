"""POST keywords/import: a JSON list or a CSV file of keywords, in one request."""

from __future__ import annotations

import csv

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api_gateway import keywords, request_body
from api_gateway.auth import CallerDep
from api_gateway.db import site_of
from api_gateway.errors import ErrorBody, bad_request
from api_gateway.params import SiteId
from api_gateway.request_body import JSON, malformed

router = APIRouter(tags=["keywords"])
MAX_ROWS = 20_000
MAX_LISTED = 100
MEDIA_TYPES = (JSON, "text/csv", "text/plain")
KEYWORD_ROW = {
    "type": "object",
    "required": ["keyword"],
    "additionalProperties": False,
    "properties": {
        "keyword": {"type": "string", "minLength": 1, "maxLength": keywords.MAX_KEYWORD_LENGTH},
        "volume": {"type": "integer", "minimum": 0, "maximum": keywords.MAX_VOLUME},
        "difficulty": {
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": 100}, {"type": "null"}],
            "description": "Left out or null: not known, and kept so.",
        },
    },
}
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": {"type": "array", "items": KEYWORD_ROW}},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Header `keyword[,volume,difficulty]` (any letter case, "
                    "each column once); an empty difficulty is not known.",
                }
            },
        },
    }
}


class ImportOut(BaseModel):
    site_id: int
    added: int = Field(description="New keywords.")
    duplicates: int = Field(description="Already present (any letter case) or repeated.")
    invalid: int = Field(description="Rows skipped; `errors` says why.")
    errors: list[str] = Field(description=f"Why, for at most the first {MAX_LISTED} rows.")
    errors_truncated: bool = Field(
        description="True when `invalid` is more than the errors listed."
    )
    duplicate_rows: list[str] = Field(
        description=f"The first {MAX_LISTED} duplicate rows, each with what it repeats: "
        '`line 4: "SEO tips" repeats line 2`, `[3]: "seo" is already present`.'
    )
    duplicate_rows_truncated: bool = Field(
        description="True when `duplicates` is more than the rows listed."
    )


@router.post(
    "/keywords/import",
    response_model=ImportOut,
    openapi_extra=IMPORT_BODY,
    responses={
        **request_body.REFUSALS,
        415: {"model": ErrorBody, "description": "Neither JSON nor CSV."},
    },
    summary="Bulk keyword import (JSON list or CSV)",
)
async def import_keywords(request: Request, caller: CallerDep, site_id: SiteId) -> ImportOut:
    media_type, text = await request_body.read_text(request, MEDIA_TYPES)
    rows, errors = _parse(media_type, text)
    if len(rows) > MAX_ROWS:
        raise bad_request(f"at most {MAX_ROWS} keywords per import", field="body", code="invalid")
    async with request.app.state.engine.begin() as conn:
        await site_of(conn, caller, site_id)
        result = await conn.run_sync(lambda c: keywords.import_keywords(c, site_id, rows))
    return ImportOut(
        site_id=site_id,
        added=result.added,
        duplicates=result.duplicates,
        invalid=len(errors),
        errors=errors[:MAX_LISTED],
        errors_truncated=len(errors) > MAX_LISTED,
        duplicate_rows=result.duplicate_rows[:MAX_LISTED],
        duplicate_rows_truncated=len(result.duplicate_rows) > MAX_LISTED,
    )


def _parse(media_type: str, text: str) -> tuple[list[keywords.KeywordIn], list[str]]:
    try:
        if media_type == JSON:
            return keywords.parse_json(request_body.parse_json(text))
        return keywords.parse_csv(text)
    except csv.Error as exc:
        raise malformed(f"the request body is not valid CSV: {exc}") from None
    except keywords.NotKeywords as exc:
        raise bad_request(str(exc), field="body", code="invalid") from None
