"""How much of the machine other work took while the bench ran, so that a section says when its
figures were taken under load. Linux only (/proc); elsewhere nothing is claimed.

Other work is the machine's busy CPU time (/proc/stat) minus this process's, its children's
(the services it started and reaped) and the local stack's Kafka and PostgreSQL (their pid
files; a server backend still connected at the end is not counted yet, and an external Kafka or
PostgreSQL is on another machine anyway). A load average would count the bench's own services.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

# Other work above this many cores, on average, marks the figures as taken under load.
BUSY_CORES = 0.5
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK


def _process_seconds(pid: int) -> float:
    """CPU time of a process and its reaped children; 0 when it is gone."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(v) for v in after_name[11:15]) / TICK  # utime stime cutime cstime


def _stack_pids() -> list[int]:
    from local_stack.settings import ALL_NODES, StackSettings

    paths = StackSettings().paths
    pids = []
    brokers = [paths.broker(node).pid for node in ALL_NODES]
    for pid_file in (*brokers, paths.pg_data / "postmaster.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.append(int(pid_file.read_text().split()[0]))
    return pids


@dataclass(frozen=True)
class Sample:
    at: float
    busy: float
    ours: float


def sample() -> Sample | None:
    if not Path("/proc/stat").exists():
        return None
    ours = sum(_process_seconds(pid) for pid in (os.getpid(), *_stack_pids()))
    return Sample(time.monotonic(), _busy_seconds(), ours)


def other_work(before: Sample | None, after: Sample | None) -> float | None:
    """Cores other work kept busy on average between the two samples."""
    if before is None or after is None or after.at <= before.at:
        return None
    others = (after.busy - before.busy) - (after.ours - before.ours)
    return max(0.0, others) / (after.at - before.at)
