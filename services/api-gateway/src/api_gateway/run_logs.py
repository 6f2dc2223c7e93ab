"""The tail of a run's main log. The path is built from database ids and the run id as the
database holds it, by the log folder's own rules (contracts.run_logs): the request's text never
names a file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Row

from contracts import run_logs


def main_log_tail(base: Path, run: Row, account_id: int, lines: int) -> list[str] | None:
    """The last `lines` complete lines of the run's main log; None when there is no such file."""
    try:
        path = run_logs.main_log_path(base, account_id, run.site_id, run.run_id)
    except ValueError:
        return None
    return run_logs.tail(path, lines) if path.is_file() else None
