"""The tail of a run's main log. The path is built from database ids and the run id as the
database holds it, and must resolve inside the log folder: the request's text never names a file."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import Row

MAIN_LOG = "automation_run.log"
BLOCK = 64 * 1024


def main_log(base: Path, run: Row, account_id: int) -> Path | None:
    root = base.resolve()
    path = (root / str(int(account_id)) / str(int(run.site_id)) / run.run_id / MAIN_LOG).resolve()
    return path if path.is_relative_to(root) else None


def tail(path: Path, lines: int) -> list[str] | None:
    """The last `lines` lines, reading backwards in blocks; None when there is no file."""
    try:
        with open(path, "rb") as file:
            position = file.seek(0, os.SEEK_END)
            data = b""
            while position > 0 and data.count(b"\n") <= lines:
                step = min(BLOCK, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    text = data.decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]
