"""Where a run's log files live, and how to read the tail of one: the log-sink writes them, the
gateway reads them (through a shared path or a volume), both by these rules.

    <base>/automation_diagnostic.log                      every run, summary lines and errors
    <base>/<account_id>/<site_id>/<run_id>/automation_run.log   the main, human-readable log
    <base>/<account_id>/<site_id>/<run_id>/stage_<n>.log        one per stage that started
    <base>/<account_id>/<site_id>/<run_id>/run_trace.jsonl      one JSON event a line
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAIN_LOG = "automation_run.log"
TRACE = "run_trace.jsonl"
DIAGNOSTIC_LOG = "automation_diagnostic.log"
# Run ids become folder names: anything else could walk out of the base folder.
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_TAIL_BLOCK = 64 * 1024


def stage_log(stage: int) -> str:
    return f"stage_{stage}.log"


def is_safe_run_id(run_id: str) -> bool:
    return bool(_SAFE_RUN_ID.match(run_id)) and ".." not in run_id


def run_dir(base: Path, account_id: int, site_id: int, run_id: str) -> Path:
    if not is_safe_run_id(run_id):
        raise ValueError(f"run id {run_id!r} cannot name a folder")
    return Path(base) / str(int(account_id)) / str(int(site_id)) / run_id


def main_log_path(base: Path, account_id: int, site_id: int, run_id: str) -> Path:
    return run_dir(base, account_id, site_id, run_id) / MAIN_LOG


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` complete lines of a file, reading backwards in blocks so a long log costs
    no more than its tail. A missing file has no lines; a line being written is left out."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as file:
            end = file.seek(0, os.SEEK_END)
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= lines:
                step = min(_TAIL_BLOCK, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    complete = data[: data.rfind(b"\n") + 1]
    text = complete.decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]
