"""Bulk keyword import from CSV or JSON rows. Re-importing a keyword (any letter case) is a
no-op, so an import can be repeated safely."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t

MAX_KEYWORD_LENGTH = 200


class KeywordIn(BaseModel):
    # A field we do not know (`site_id`, a typo) is an error, not silently dropped.
    model_config = ConfigDict(extra="forbid")

    keyword: str = Field(min_length=1, max_length=MAX_KEYWORD_LENGTH)
    volume: int = Field(0, ge=0, le=2_000_000_000)
    difficulty: int = Field(0, ge=0, le=100)

    @field_validator("keyword")
    @classmethod
    def strip(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("keyword must not contain NUL characters")
        value = " ".join(value.split())
        if not value:
            raise ValueError("keyword must not be blank")
        return value


@dataclass
class ImportResult:
    added: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


def parse_csv(text: str) -> tuple[list[KeywordIn], list[str]]:
    """Rows with a `keyword` column (volume and difficulty optional, header in any letter case);
    errors name the line. A quote left open is an error (csv.Error), not the rest of the file
    read into one keyword."""
    reader = csv.DictReader(io.StringIO(text), strict=True)
    header = [name.strip().lower() for name in reader.fieldnames or ()]
    if "keyword" not in header:
        return [], ["CSV needs a header row with a 'keyword' column"]
    reader.fieldnames = header
    rows, errors = [], []
    for raw in reader:
        line = reader.line_num
        if None in raw:
            errors.append(f"line {line}: more values than the header has columns")
            continue
        values = {k: v.strip() for k, v in raw.items() if k and v is not None and v.strip()}
        try:
            rows.append(KeywordIn.model_validate(values))
        except ValidationError as exc:
            errors.append(f"line {line}: " + _messages(exc))
    return rows, errors


def parse_json(document: object) -> tuple[list[KeywordIn], list[str]]:
    """A JSON list of row objects; errors name the row index."""
    if isinstance(document, dict) and "keywords" in document:
        document = document["keywords"]
    if not isinstance(document, list):
        return [], ['JSON body must be a list of keywords (or {"keywords": [...]})']
    rows, errors = [], []
    for index, raw in enumerate(document):
        if not isinstance(raw, dict):
            errors.append(f'[{index}]: a row must be an object such as {{"keyword": "..."}}')
            continue
        try:
            rows.append(KeywordIn.model_validate(raw))
        except ValidationError as exc:
            errors.append(f"[{index}]: " + _messages(exc))
    return rows, errors


def _messages(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())


def import_keywords(conn: Connection, site_id: int, rows: list[KeywordIn]) -> ImportResult:
    result = ImportResult()
    seen: set[str] = set()
    unique_rows = []
    for row in rows:
        if row.keyword.lower() in seen:
            result.duplicates += 1
            continue
        seen.add(row.keyword.lower())
        unique_rows.append(
            {
                "site_id": site_id,
                "text": row.keyword,
                "volume": row.volume,
                "difficulty": row.difficulty,
            }
        )
    if unique_rows:
        inserted = conn.execute(
            insert(t.keywords)
            .values(unique_rows)
            .on_conflict_do_nothing()
            .returning(t.keywords.c.id)
        ).all()
        result.added = len(inserted)
        result.duplicates += len(unique_rows) - len(inserted)
    return result


def count_by_status(conn: Connection, site_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(t.keywords.c.status, sa.func.count())
        .where(t.keywords.c.site_id == site_id)
        .group_by(t.keywords.c.status)
    ).all()
    return {status: n for status, n in rows}
