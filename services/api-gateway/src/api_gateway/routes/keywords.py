"""POST keywords/import: a JSON list or a CSV file of keywords, in one request."""

from __future__ import annotations

import csv
import json

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api_gateway import keywords
from api_gateway.auth import CallerDep
from api_gateway.body_limit import MAX_BODY_BYTES
from api_gateway.db import site_of
from api_gateway.errors import ApiError, ErrorBody, bad_request
from api_gateway.params import SiteId

router = APIRouter(tags=["keywords"])
MAX_ROWS = 20_000
MAX_ERRORS_SHOWN = 100
KEYWORD_ROW = {
    "type": "object",
    "required": ["keyword"],
    "additionalProperties": False,
    "properties": {
        "keyword": {"type": "string", "minLength": 1, "maxLength": keywords.MAX_KEYWORD_LENGTH},
        "volume": {"type": "integer", "minimum": 0},
        "difficulty": {"type": "integer", "minimum": 0, "maximum": 100},
    },
}
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": KEYWORD_ROW}},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Header `keyword[,volume,difficulty]` (any letter case).",
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
    errors: list[str] = Field(description=f"Why, for at most the first {MAX_ERRORS_SHOWN} rows.")
    errors_truncated: bool = Field(
        description="True when `invalid` is more than the errors listed."
    )


@router.post(
    "/keywords/import",
    response_model=ImportOut,
    openapi_extra=IMPORT_BODY,
    responses={
        413: {"model": ErrorBody, "description": f"Body over {MAX_BODY_BYTES} bytes."},
        415: {"model": ErrorBody, "description": "Neither JSON nor CSV."},
    },
    summary="Bulk keyword import (JSON list or CSV)",
)
async def import_keywords(request: Request, caller: CallerDep, site_id: SiteId) -> ImportOut:
    rows, errors = _parse(request.headers.get("content-type", ""), await _body(request))
    if len(rows) > MAX_ROWS:
        raise bad_request(f"at most {MAX_ROWS} keywords per import", field="body")
    async with request.app.state.engine.begin() as conn:
        await site_of(conn, caller, site_id)
        result = await conn.run_sync(lambda c: keywords.import_keywords(c, site_id, rows))
    return ImportOut(
        site_id=site_id,
        added=result.added,
        duplicates=result.duplicates,
        invalid=len(errors),
        errors=errors[:MAX_ERRORS_SHOWN],
        errors_truncated=len(errors) > MAX_ERRORS_SHOWN,
    )


async def _body(request: Request) -> str:
    raw = await request.body()  # BodyLimit refuses past MAX_BODY_BYTES while it streams in
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad_request("body is not UTF-8 text", field="body") from None


def _parse(content_type: str, text: str) -> tuple[list[keywords.KeywordIn], list[str]]:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            rows, errors = keywords.parse_json(json.loads(text))
        except (json.JSONDecodeError, RecursionError):
            raise bad_request("body is not valid JSON", field="body") from None
        if not rows and errors and errors[0].startswith("JSON body must"):
            raise bad_request(errors[0], field="body")
        return rows, errors
    if media_type in ("text/csv", "text/plain"):
        try:
            rows, errors = keywords.parse_csv(text)
        except csv.Error as exc:
            raise bad_request(f"body is not valid CSV: {exc}", field="body") from None
        if not rows and errors and errors[0].startswith("CSV needs"):
            raise bad_request(errors[0], field="body")
        return rows, errors
    raise ApiError(415, "send application/json or text/csv", field="content-type")
