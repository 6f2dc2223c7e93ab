"""One site's state as the orchestrator keeps it, immutable: each run's state is the contracts
fold of its events, and a little more is remembered beside it (RunNotes). Every change returns
a new value, so a handler's input is never touched and what it decided is all that changed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from pyrsistent import PMap, PSet, pmap, pset

from contracts import commands as cmd
from contracts import events as ev
from contracts.envelope import Envelope
from contracts.state import RunState, mutate

EMPTY_RUN = RunState()
_NO_TIMES: PMap[int, datetime] = pmap()
_NO_RUNS: PMap[str, RunState] = pmap()
_NO_NOTES: PMap[str, RunNotes] = pmap()
_NO_COMMANDS: PSet[UUID] = pset()


@dataclass(frozen=True, slots=True)
class RunNotes:
    """What the fold does not keep but the decisions need. Rebuilt from the stream where it can
    be (batch completion times, halts); the StartStage send time is lost on restart, which costs
    one early, harmless resend."""

    correlation_id: UUID | None = None
    start_stage_sent_at: PMap[int, datetime] = _NO_TIMES
    batch_done_at: PMap[int, datetime] = _NO_TIMES
    halted_by: UUID | None = None

    def after_event(self, message: Envelope) -> RunNotes:
        data = message.data
        if isinstance(data, ev.RunStarted):
            return replace(self, correlation_id=message.correlation_id)
        if isinstance(data, ev.StageBatchCompleted):
            done_at = self.batch_done_at.set(data.stage, message.time)
            halted_by = message.message_id if data.halted else self.halted_by
            return replace(self, batch_done_at=done_at, halted_by=halted_by)
        if isinstance(data, ev.RunResumed) and self.halted_by is not None:
            return replace(self, halted_by=None)
        return self

    def after_sent(self, message: Envelope, now: datetime) -> RunNotes:
        if isinstance(message.data, cmd.StartStage):
            sent_at = self.start_stage_sent_at.set(message.data.stage, now)
            return replace(self, start_stage_sent_at=sent_at)
        return self


NO_NOTES = RunNotes()


@dataclass(frozen=True, slots=True)
class SiteState:
    site_id: int
    runs: PMap[str, RunState] = _NO_RUNS
    notes: PMap[str, RunNotes] = _NO_NOTES
    handled_commands: PSet[UUID] = _NO_COMMANDS
    active_run_id: str | None = None

    def run(self, run_id: str) -> RunState | None:
        return self.runs.get(run_id)

    def active_run(self) -> RunState | None:
        return self.runs.get(self.active_run_id) if self.active_run_id else None

    def notes_of(self, run_id: str) -> RunNotes:
        return self.notes.get(run_id, NO_NOTES)

    def apply(self, message: Envelope) -> SiteState:
        """This state with one event folded in; the same object when it changes nothing."""
        handled = self.handled_commands
        if message.causation_id is not None and isinstance(message.data, ev.COMMAND_OUTCOMES):
            handled = handled.add(message.causation_id)
        run_id = message.run_id
        old = self.runs.get(run_id, EMPTY_RUN) if run_id is not None else None
        new = mutate(old, message) if old is not None else None
        if new is old:  # no run, or a repeat: at most the command is newly known as handled
            return (
                self
                if handled is self.handled_commands
                else replace(self, handled_commands=handled)
            )
        before = self.notes_of(run_id)
        notes = before.after_event(message)
        active = self.active_run_id
        if new.is_active:
            active = run_id
        elif active == run_id:
            active = None
        return SiteState(
            self.site_id,
            self.runs.set(run_id, new),
            self.notes if notes is before else self.notes.set(run_id, notes),
            handled,
            active,
        )

    def after_sent(self, message: Envelope, now: datetime) -> SiteState:
        """This state once a command decided for one of its runs has been sent at `now`."""
        notes = self.notes_of(message.run_id)
        sent = notes.after_sent(message, now)
        return self if sent is notes else replace(self, notes=self.notes.set(message.run_id, sent))


class Sites:
    """The latest state of every owned site, by site id, and the partition each came from."""

    def __init__(self) -> None:
        self._sites: dict[int, SiteState] = {}
        self._partitions: dict[int, int] = {}

    def get(self, site_id: int, partition: int) -> SiteState:
        self._partitions[site_id] = partition
        site = self._sites.get(site_id)
        return site if site is not None else SiteState(site_id)

    def put(self, site: SiteState) -> None:
        self._sites[site.site_id] = site

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        dropped = set(partitions)
        gone = {site for site, p in self._partitions.items() if p in dropped}
        self._sites = {k: s for k, s in self._sites.items() if k not in gone}
        self._partitions = {k: p for k, p in self._partitions.items() if k not in gone}

    def with_active_run(self) -> list[SiteState]:
        return [site for site in self._sites.values() if site.active_run_id is not None]

    def active_runs(self) -> list[RunState]:
        return [run for site in self._sites.values() if (run := site.active_run()) is not None]
