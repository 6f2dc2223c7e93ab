"""Query and path parameters shared by the routes, with the limits that keep bad input a 400.

Each reads only what its OpenAPI schema allows: an integer in decimal digits (pydantic alone
would also read ` 5`, `1_000` or `5.0`) and a day as YYYY-MM-DD (pydantic alone would also read
`0` as 1970-01-01, or a date-time at midnight)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import Path, Query
from pydantic import BeforeValidator, WithJsonSchema

from contracts.values import RUN_ID_PATTERN

MAX_ID = 2**63 - 1
DECIMAL = re.compile(r"[+-]?[0-9]+")
# From 0001-01-01, the first day Python has; format `date` checks the month and the day.
DAY_PATTERN = r"^(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}$"


def _decimal(value: object) -> object:
    if isinstance(value, str) and not DECIMAL.fullmatch(value):
        raise ValueError("must be an integer in decimal digits")
    return value


def integral(value: object) -> object:
    """A JSON number without a fraction is an integer, as JSON Schema has it: 20.0 is 20 (while
    `true` and `"20"` stay refused by a strict model)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _day(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(DAY_PATTERN, value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


# Goes after the Query or Path: before them, the document would show `ge` for `minimum`.
WholeNumber = BeforeValidator(_decimal)
# For an integer in a JSON body.
JsonInteger = BeforeValidator(integral)
Day = Annotated[
    date,
    BeforeValidator(_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DAY_PATTERN}),
]
SiteId = Annotated[int, Query(ge=1, le=MAX_ID, description="A site of your account."), WholeNumber]
RunId = Annotated[
    str,
    Query(
        pattern=RUN_ID_PATTERN,
        max_length=100,
        description="`run_YYYYMMDD_HHMMSS_<trigger>_<hex>`.",
    ),
]
RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, max_length=100)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID), WholeNumber]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size."), WholeNumber]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip."), WholeNumber]
