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
    "description": "A keyword and what is known of it; a row the import cannot take is skipped "
    "and named in `errors`.",
    "required": ["keyword"],
    "additionalProperties": False,
    "properties": {
        "keyword": {
            "type": "string",
            "minLength": 1,
            "maxLength": keywords.MAX_KEYWORD_LENGTH,
            "description": "Runs of white space become one space; blank or with NUL: skipped.",
        },
        "volume": {"type": "integer", "minimum": 0, "maximum": keywords.MAX_VOLUME},
        "difficulty": {
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": 100}, {"type": "null"}],
            "description": "Left out or null: not known, and kept so.",
        },
    },
}
# Any JSON value may stand as a row: KeywordRow says which rows import, the others are skipped.
JSON_ROWS = request_body.schema_ref(
    "KeywordRows",
    {
        "type": "array",
        "maxItems": MAX_ROWS,
        "items": {"anyOf": [request_body.schema_ref("KeywordRow", KEYWORD_ROW), {}]},
    },
)
CSV_BODY = request_body.schema_ref(
    "KeywordCsv",
    {
        "type": "string",
        "pattern": keywords.CSV_PATTERN,
        "description": "A header line naming the columns `keyword` and, if given, `volume` and "
        "`difficulty`: in any order, each once, in any ASCII letter case, bare or in double "
        "quotes, spaces or tabs around a name ignored, columns without a name ignored too. "
        "Then a row per line, well-formed CSV (a double quote opens a field only at its start "
        "and must be closed; a carriage return only before a line feed or at the end). An "
        "empty difficulty is not known. A row whose values are wrong is skipped and named in "
        f"`errors`. At most {MAX_ROWS} rows, and a field of at most "
        f"{csv.field_size_limit()} characters; a byte order mark is dropped.",
        "examples": ["keyword,volume,difficulty\nseo tips,1200,35\nlocal seo,,\n"],
    },
)
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "anyOf": [
                        JSON_ROWS,
                        {
                            "type": "object",
                            "required": ["keywords"],
                            "properties": {"keywords": JSON_ROWS},
                        },
                    ],
                    "description": 'A list of rows, or an object with the list as "keywords".',
                }
            },
            "text/csv": {"schema": CSV_BODY},
            "text/plain": {"schema": CSV_BODY},
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
    if len(rows) + len(errors) > MAX_ROWS:  # an error per row skipped
        raise bad_request(f"at most {MAX_ROWS} rows per import", field="body", code="invalid")
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
