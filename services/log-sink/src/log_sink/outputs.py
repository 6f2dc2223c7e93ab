"""Writes what the projector rendered: run files (and their mirror), the diagnostic log and the
read model. A failure is counted, logged once and left for the next flush to retry; the run's
lines stay in memory until they are written, so nothing is lost and nothing blocks a run."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from contracts import run_logs
from log_sink import metrics
from log_sink.files import DiagnosticLog, FileStore
from log_sink.projection import Projector, RunView
from log_sink.read_model import changed_stage_rows, upsert_runs

log = logging.getLogger("log_sink")


class Outputs:
    def __init__(
        self,
        base: Path,
        mirror: Path | None = None,
        engine: sa.Engine | None = None,
        *,
        fresh_runs: bool = False,
        fresh_diagnostic: bool = False,
        files: bool = True,
    ) -> None:
        self.stores = [FileStore(base, fresh=fresh_runs)]
        if mirror is not None:
            self.stores.append(FileStore(mirror, fresh=fresh_runs))
        self.diagnostic = DiagnosticLog(
            Path(base) / run_logs.DIAGNOSTIC_LOG, fresh=fresh_diagnostic
        )
        self.engine = engine
        self.files = files
        self._failing: set[str] = set()

    def flush(self, projector: Projector, replaying: frozenset[int] = frozenset()) -> bool:
        """Write every dirty run; retire finished runs that are fully written. True when nothing
        is left pending.

        Rows of an unfinished run on a partition still `replaying` wait: its fold is behind what
        an earlier life already wrote, and the gateway must not see the run go back in time.
        Files need no such care: they only ever receive the lines they lack."""
        views = [projector.runs[run_id] for run_id in sorted(projector.dirty)]
        rows_due = [v for v in views if v.finished or v.partition not in replaying]
        rows_written = self._write_rows(rows_due)
        for view in views:
            if self._write_files(view) and rows_written and view in rows_due:
                projector.dirty.discard(view.run_id)
                if view.finished:
                    self._retire(projector, view)
        metrics.PENDING_RUNS.set(len(projector.dirty))
        metrics.ACTIVE_RUNS.set(len(projector.runs))
        return not projector.dirty

    def _retire(self, projector: Projector, view: RunView) -> None:
        if view.has_folder:
            folder = self._relative_dir(view)
            for store in self.stores:
                store.forget(folder)
        projector.retire(view.run_id)

    @staticmethod
    def _relative_dir(view: RunView) -> Path:
        state = view.state
        return run_logs.run_dir(Path(), state.account_id, state.site_id, view.run_id)

    def _write_files(self, view: RunView) -> bool:
        if not self.files:
            return True
        written = self._attempt("diagnostic", self._write_diagnostic, view)
        if not view.has_folder:
            return written
        for index, store in enumerate(self.stores):
            target = "files" if index == 0 else "mirror"
            written = self._attempt(target, self._write_run_files, store, view) and written
        return written

    def _write_diagnostic(self, view: RunView) -> None:
        if view.diagnostic:
            metrics.LINES.labels("diagnostic").inc(self.diagnostic.append(view.diagnostic))
            view.diagnostic.clear()

    def _write_run_files(self, store: FileStore, view: RunView) -> None:
        folder = self._relative_dir(view)
        for name, lines in view.files.items():
            metrics.LINES.labels("run").inc(store.sync(folder / name, lines))

    def _write_rows(self, views: list[RunView]) -> bool:
        views = [v for v in views if v.has_row]
        if self.engine is None or not views:
            return True
        runs = [(v.state, v.estimate, v.partition, v.first_offset) for v in views]
        stages = {v.run_id: changed_stage_rows(v.state, v.stages_written) for v in views}
        stage_rows = [row for rows in stages.values() for row in rows]
        if not self._attempt("read_model", self._upsert, runs, stage_rows):
            return False
        for view in views:
            view.stages_written.update((row["stage"], row) for row in stages[view.run_id])
        return True

    def _upsert(self, runs: list, stage_rows: list[dict]) -> None:
        with self.engine.begin() as connection:
            upsert_runs(connection, runs, stage_rows)

    def _attempt(self, target: str, write, *args) -> bool:
        try:
            write(*args)
        except (OSError, ValueError, sa.exc.SQLAlchemyError) as exc:
            metrics.WRITE_ERRORS.labels(target).inc()
            if target not in self._failing:
                self._failing.add(target)
                log.warning("writing %s failed, will retry: %s", target, exc)
            return False
        if target in self._failing:
            self._failing.discard(target)
            log.info("writing %s works again", target)
        return True
