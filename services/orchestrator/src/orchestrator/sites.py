"""The runs of the sites this instance owns: each run's state is the contracts fold of its
events; a little more is remembered in memory beside it (RunNotes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from contracts import commands as cmd
from contracts import events as ev
from contracts.envelope import Envelope
from contracts.state import RunState, StageState, mutate

EMPTY_RUN = RunState()


def first_open_item(stage: StageState, start: int = 0) -> int:
    """Index of the first picked item, from `start` on, that is neither processed nor failed."""
    index, items = start, stage.items
    while index < len(items) and stage.is_settled(items[index].id):
        index += 1
    return index


@dataclass(slots=True)
class RunNotes:
    """What the fold does not keep but the decisions need. Rebuilt from the stream where it can
    be (batch completion times, halts); the StartStage send time is lost on restart, which costs
    one early, harmless resend."""

    correlation_id: UUID | None = None
    start_stage_sent_at: dict[int, datetime] = field(default_factory=dict)
    batch_done_at: dict[int, datetime] = field(default_factory=dict)
    halted_by: UUID | None = None
    # Per stage, how many leading picked items are settled: a memo of decide's scan.
    open_from: dict[int, int] = field(default_factory=dict)

    def note_event(self, message: Envelope) -> None:
        data = message.data
        if isinstance(data, ev.RunStarted):
            self.correlation_id = message.correlation_id
        elif isinstance(data, ev.StageBatchCompleted):
            self.batch_done_at[data.stage] = message.time
            if data.halted:
                self.halted_by = message.message_id
        elif isinstance(data, ev.RunResumed):
            self.halted_by = None

    def note_settled(self, run: RunState) -> None:
        """Move the current stage's memo of settled items forward. Settled items only ever
        grow, so each scan resumes where the last one stopped, and a decision costs a batch,
        not the whole stage."""
        stage = run.stage(run.current_stage)
        if stage.items:
            start = self.open_from.get(stage.number, 0)
            self.open_from[stage.number] = first_open_item(stage, start)

    def note_sent(self, message: Envelope, now: datetime) -> None:
        if isinstance(message.data, cmd.StartStage):
            self.start_stage_sent_at[message.data.stage] = now


@dataclass(slots=True)
class SiteState:
    site_id: int
    partition: int | None = None
    runs: dict[str, RunState] = field(default_factory=dict)
    notes: dict[str, RunNotes] = field(default_factory=dict)
    handled_commands: set[UUID] = field(default_factory=set)
    active_run_id: str | None = None

    def run(self, run_id: str) -> RunState | None:
        return self.runs.get(run_id)

    def active_run(self) -> RunState | None:
        return self.runs.get(self.active_run_id) if self.active_run_id else None

    def notes_of(self, run_id: str) -> RunNotes:
        notes = self.notes.get(run_id)
        if notes is None:
            notes = self.notes[run_id] = RunNotes()
        return notes

    def apply(self, message: Envelope) -> RunState | None:
        """Fold one event in; the run's new state when it changed, else None (a repeat)."""
        if message.causation_id is not None and isinstance(message.data, ev.COMMAND_OUTCOMES):
            self.handled_commands.add(message.causation_id)
        if message.run_id is None:
            return None
        old = self.runs.get(message.run_id, EMPTY_RUN)
        new = mutate(old, message)
        if new is old:
            return None
        self.runs[message.run_id] = new
        notes = self.notes_of(message.run_id)
        notes.note_event(message)
        notes.note_settled(new)
        if new.is_active:
            self.active_run_id = message.run_id
        elif self.active_run_id == message.run_id:
            self.active_run_id = None
        return new


class Sites:
    """Every owned site's state, by site id."""

    def __init__(self) -> None:
        self._sites: dict[int, SiteState] = {}

    def site(self, site_id: int, partition: int | None = None) -> SiteState:
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = SiteState(site_id, partition)
        elif partition is not None:
            site.partition = partition
        return site

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self._sites = {k: s for k, s in self._sites.items() if s.partition not in gone}

    def active_runs(self) -> Iterator[tuple[SiteState, RunState]]:
        for site in list(self._sites.values()):
            run = site.active_run()
            if run is not None:
                yield site, run

    def active_count(self) -> int:
        return sum(1 for _ in self.active_runs())
