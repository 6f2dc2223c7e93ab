"""Bulk keyword import from CSV or JSON rows. Re-importing a keyword (any letter case) is a
no-op, so an import can be repeated safely; the answer says which rows were duplicates."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import permutations

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t

MAX_KEYWORD_LENGTH = 200
MAX_VOLUME = 2_000_000_000
COLUMNS = ("keyword", "volume", "difficulty")  # of a CSV header; `keyword` is required


class NotKeywords(ValueError):
    """The body as a whole is no list of keywords: no `keyword` column, a column named twice,
    JSON that is not a list of rows."""


class KeywordIn(BaseModel):
    # A field we do not know (`site_id`, a typo) is an error, not silently dropped.
    model_config = ConfigDict(extra="forbid")

    keyword: str = Field(min_length=1, max_length=MAX_KEYWORD_LENGTH)
    volume: int = Field(0, ge=0, le=MAX_VOLUME)
    difficulty: int | None = Field(None, ge=0, le=100, description="None: not known.")
    _where: str = PrivateAttr("")

    @field_validator("keyword")
    @classmethod
    def strip(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("keyword must not contain NUL characters")
        value = " ".join(value.split())
        if not value:
            raise ValueError("keyword must not be blank")
        return value

    @classmethod
    def read(cls, values: object, where: str, *, strict: bool) -> KeywordIn:
        """A row read at `where` ("line 3", "[2]"). Strict for JSON, whose values come typed:
        `true` or `"10"` is no volume; CSV values are text, so `10` there is a number."""
        row = cls.model_validate(values, strict=strict)
        row._where = where
        return row

    @property
    def where(self) -> str:
        """Where the row was read, to name it among the duplicates; "" when not read."""
        return self._where


@dataclass
class ImportResult:
    added: int = 0
    duplicates: int = 0
    # Each duplicate row in order, with what it repeats: `line 4: "SEO tips" repeats line 2`.
    duplicate_rows: list[str] = field(default_factory=list)


# A row as found in the body: where it is ("line 3", "[2]"), its values, and the reason it
# cannot be read at all (None if it can).
Found = tuple[str, object, str | None]


def parse_csv(text: str) -> tuple[list[KeywordIn], list[str]]:
    """Rows with a `keyword` column (volume and difficulty optional, header in any letter case);
    errors name the line. A quote left open is an error (csv.Error), not the rest of the file
    read into one keyword; a header without `keyword`, naming a column twice or a column other
    than COLUMNS is NotKeywords. CSV_PATTERN says the same as a regular expression.
    """
    reader = csv.DictReader(io.StringIO(text), strict=True)
    header = [_column(name) for name in reader.fieldnames or ()]
    if "keyword" not in header:
        raise NotKeywords("CSV needs a header row with a 'keyword' column")
    twice = sorted(name for name, n in Counter(header).items() if name and n > 1)
    if twice:
        raise NotKeywords(f"the CSV header names the column '{twice[0]}' more than once")
    reader.fieldnames = header
    return _read_rows(_csv_rows(reader), strict=False)


def _csv_rows(reader: csv.DictReader) -> Iterator[Found]:
    for raw in reader:
        where = f"line {reader.line_num}"
        if None in raw:
            yield where, raw, "more values than the header has columns"
        else:
            yield where, {k: v.strip() for k, v in raw.items() if k and v and v.strip()}, None


def _column(name: str) -> str:
    """A header name as one of COLUMNS, read in any ASCII letter case with spaces and tabs around
    it dropped; "" for a column without a name, whose values are not read."""
    column = name.strip(" \t")
    column = column.lower() if column.isascii() else column
    if column and column not in COLUMNS:
        raise NotKeywords(
            f"the CSV header names the column {name!r}; the columns are {', '.join(COLUMNS)}"
        )
    return column


def _csv_pattern() -> str:
    """The texts parse_csv reads without refusing them whole, as a regular expression that
    ECMA-262 (JSON Schema's `pattern`), Python's `re` and Rust's `regex` read alike: an optional
    byte order mark, then the header (each of COLUMNS at most once, `keyword` among them, in any
    order and ASCII letter case, bare or in double quotes, with spaces or tabs around it, and any
    columns without a name), then rows of well-formed CSV (a double quote opens a field only at
    its start and must be closed, a carriage return only ends a line). Rows are not read here:
    one whose values are wrong is skipped and listed in the answer's `errors`."""
    space = r"[ \t]*"
    blank = f'(?:{space}|"{space}")'

    def named(column: str) -> str:
        letters = "".join(f"[{c.upper()}{c}]" for c in column)
        return f'(?:{space}{letters}{space}|"{space}{letters}{space}")'

    unnamed_after = f"(?:,{blank})*"
    orders = [
        f"{unnamed_after},".join(named(c) for c in order) + unnamed_after
        for size in range(1, len(COLUMNS) + 1)
        for order in permutations(COLUMNS, size)
        if "keyword" in order
    ]
    header = f"(?:{blank},)*(?:{'|'.join(orders)})"
    cell = r'(?:"(?:[^"]|"")*"|(?:[^",\r\n][^,\r\n]*)?)'
    row = f"{cell}(?:,{cell})*"
    return rf"^\uFEFF?{header}(?:\r*\n{row})*\r*$"


CSV_PATTERN = _csv_pattern()


def parse_json(document: object) -> tuple[list[KeywordIn], list[str]]:
    """A JSON list of row objects, their values of the types the schema says (no `"10"` or
    `true` for a number); errors name the row index."""
    if isinstance(document, dict) and "keywords" in document:
        document = document["keywords"]
    if not isinstance(document, list):
        raise NotKeywords('JSON body must be a list of keywords (or {"keywords": [...]})')
    not_a_row = 'a row must be an object such as {"keyword": "..."}'
    found = (
        (f"[{index}]", raw, None if isinstance(raw, dict) else not_a_row)
        for index, raw in enumerate(document)
    )
    return _read_rows(found, strict=True)


def _read_rows(found: Iterable[Found], *, strict: bool) -> tuple[list[KeywordIn], list[str]]:
    """The rows that read as keywords, in order, and an error naming where for each other one."""
    rows, errors = [], []
    for where, values, problem in found:
        if problem is None:
            try:
                rows.append(KeywordIn.read(values, where, strict=strict))
                continue
            except ValidationError as exc:
                problem = _messages(exc)
        errors.append(f"{where}: {problem}")
    return rows, errors


def _messages(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())


def import_keywords(conn: Connection, site_id: int, rows: Sequence[KeywordIn]) -> ImportResult:
    where = [row.where or f"row {n}" for n, row in enumerate(rows, 1)]
    first_at: dict[str, int] = {}
    duplicate: dict[int, str] = {}  # by the row's position: what it repeats
    for index, row in enumerate(rows):
        seen = first_at.setdefault(row.keyword.lower(), index)
        if seen != index:
            duplicate[index] = f"repeats {where[seen]}"
    added = _insert_new(conn, site_id, [rows[index] for index in first_at.values()])
    for index in first_at.values():
        if rows[index].keyword not in added:
            duplicate[index] = "is already present"
    listed = [f"{where[i]}: {_quoted(rows[i])} {duplicate[i]}" for i in sorted(duplicate)]
    return ImportResult(added=len(added), duplicates=len(duplicate), duplicate_rows=listed)


def _insert_new(conn: Connection, site_id: int, rows: list[KeywordIn]) -> set[str]:
    """Insert the keywords the site does not have yet (any letter case); those inserted."""
    if not rows:
        return set()
    values = [
        {"site_id": site_id, "text": r.keyword, "volume": r.volume, "difficulty": r.difficulty}
        for r in rows
    ]
    inserted = conn.execute(
        insert(t.keywords).values(values).on_conflict_do_nothing().returning(t.keywords.c.text)
    )
    return set(inserted.scalars())


def _quoted(row: KeywordIn) -> str:
    return json.dumps(row.keyword, ensure_ascii=False)


def count_by_status(conn: Connection, site_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(t.keywords.c.status, sa.func.count())
        .where(t.keywords.c.site_id == site_id)
        .group_by(t.keywords.c.status)
    ).all()
    return {status: n for status, n in rows}
