"""Query and path parameters shared by the routes, with the limits that keep bad input a 400."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from contracts.values import RUN_ID_PATTERN

MAX_ID = 2**63 - 1

SiteId = Annotated[int, Query(ge=1, le=MAX_ID, description="A site of your account.")]
RunId = Annotated[
    str,
    Query(
        pattern=RUN_ID_PATTERN,
        max_length=100,
        description="`run_YYYYMMDD_HHMMSS_<trigger>_<hex>`.",
    ),
]
RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, max_length=100)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")]
