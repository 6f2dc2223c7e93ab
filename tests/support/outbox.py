"""The outbox table as a test without a database sees it: the row `stage_workers.outbox.enqueue`
inserts, kept for the test to read."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class OutboxConnection:
    """Stands in for the connection `enqueue` writes with; `row` is what it inserted last."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}

    def execute(self, _statement, row: dict[str, Any]):
        self.row = row
        return SimpleNamespace(first=lambda: (1,))  # the insert's RETURNING: a row was new
