"""The runs being materialized, in memory: for each, the fold and every line rendered so far.

Nothing here touches a disk or a database. The lines of a run's files are a pure function of
its events in stream order, so holding them lets a writer (re)produce any file from scratch, and
lets a restarted sink replay the stream and skip the lines a file already has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts import run_logs
from contracts.envelope import Envelope
from contracts.events import RunStarted
from contracts.state import FINISHED, RunState, mutate
from log_sink.render import render


@dataclass
class RunView:
    run_id: str
    partition: int | None
    first_offset: int | None = None  # of the run's first event on its partition
    state: RunState = field(default_factory=RunState)
    estimate: int | None = None
    files: dict[str, list[str]] = field(default_factory=dict)
    diagnostic: list[str] = field(default_factory=list)
    # The stage rows as last committed to the read model (stage number -> row): only the
    # stages that changed since are written again.
    stages_written: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state.status in FINISHED

    @property
    def has_row(self) -> bool:
        """Rejected runs never ran: they get a diagnostic line, no folder and no read-model row."""
        return self.state.status not in ("none", "rejected")

    @property
    def has_folder(self) -> bool:
        return self.has_row and run_logs.is_safe_run_id(self.run_id)

    def apply(self, message: Envelope) -> bool:
        """Fold one event and render what it changed. False when the fold ignored it."""
        after = mutate(self.state, message)
        if after is self.state:
            return False
        rendered = render(after, message)
        if isinstance(message.data, RunStarted):
            self.estimate = message.data.estimate
        self.state = after
        if rendered.trace is not None:
            self.files.setdefault(run_logs.TRACE, []).append(rendered.trace)
        if rendered.human:
            self.files.setdefault(run_logs.MAIN_LOG, []).extend(rendered.human)
        if rendered.human and rendered.stage is not None:
            self.files.setdefault(run_logs.stage_log(rendered.stage), []).extend(rendered.human)
        self.diagnostic.extend(rendered.diagnostic)
        return True


class Projector:
    """Routes events to their run's view; remembers finished runs once their outputs are written
    so that a late redelivery cannot reopen them."""

    def __init__(self, only_runs: frozenset[str] | None = None) -> None:
        self.runs: dict[str, RunView] = {}
        self.dirty: set[str] = set()
        self.retired: set[str] = set()
        self._only = only_runs

    def apply(
        self, message: Envelope, partition: int | None = None, offset: int | None = None
    ) -> bool:
        run_id = message.run_id
        if run_id is None or run_id in self.retired:
            return False
        if self._only is not None and run_id not in self._only:
            return False
        view = self.runs.get(run_id) or RunView(run_id, partition, offset)
        if not view.apply(message):
            return False
        self.runs[run_id] = view
        self.dirty.add(run_id)
        return True

    def retire(self, run_id: str) -> None:
        self.runs.pop(run_id, None)
        self.dirty.discard(run_id)
        self.retired.add(run_id)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Another instance owns these now; it replays them from the start."""
        for run_id in [r for r, v in self.runs.items() if v.partition in partitions]:
            self.runs.pop(run_id)
            self.dirty.discard(run_id)
