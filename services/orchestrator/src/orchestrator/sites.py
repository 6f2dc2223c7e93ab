"""One site's state as the orchestrator keeps it, immutable: each run's state is the contracts
fold of its events, and a little more is remembered beside it (RunNotes). Every change returns
a new value, so a handler's input is never touched and what it decided is all that changed.

Only what decisions need is kept, so the state (and its snapshots) follows the active runs, not
the history: an ended run shrinks to a summary, and summaries and answered command ids are
forgotten FORGET_AFTER after (docs/adr/0013 says why that is safe)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from pyrsistent import PMap, pmap

from contracts import commands as cmd
from contracts import events as ev
from contracts.envelope import Envelope
from contracts.state import FINISHED, RunState, mutate

EMPTY_RUN = RunState()
_NO_TIMES: PMap[int, datetime] = pmap()
_NO_RUNS: PMap[str, RunState] = pmap()
_NO_NOTES: PMap[str, RunNotes] = pmap()
_NO_COMMANDS: PMap[UUID, datetime] = pmap()
# Well past the last moment a command about an ended run can come again: a redelivery from the
# run-commands topic (retention 7 days, up to 14 before its segment is deleted), or the
# scheduler publishing a slot again (within one scheduler interval).
FORGET_AFTER = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class RunNotes:
    """What the fold does not keep but the decisions need. Rebuilt from the stream where it can
    be (batch completion times, halts); the StartStage send time is lost on restart, which costs
    one early, harmless resend."""

    correlation_id: UUID | None = None
    start_stage_sent_at: PMap[int, datetime] = _NO_TIMES
    batch_done_at: PMap[int, datetime] = _NO_TIMES
    halted_by: UUID | None = None
    halt_reason: str | None = None  # the pause reason the halt calls for

    def after_event(self, message: Envelope) -> RunNotes:
        data = message.data
        if isinstance(data, ev.RunStarted):
            return replace(self, correlation_id=message.correlation_id)
        if isinstance(data, ev.StageBatchCompleted):
            done_at = self.batch_done_at.set(data.stage, message.time)
            if not data.halted:
                return replace(self, batch_done_at=done_at)
            reason = data.halted if not data.halt_detail else f"{data.halted}: {data.halt_detail}"
            return replace(
                self, batch_done_at=done_at, halted_by=message.message_id, halt_reason=reason
            )
        if isinstance(data, ev.RunResumed) and self.halted_by is not None:
            return replace(self, halted_by=None, halt_reason=None)
        return self

    def after_sent(self, message: Envelope, now: datetime) -> RunNotes:
        if isinstance(message.data, cmd.StartStage):
            sent_at = self.start_stage_sent_at.set(message.data.stage, now)
            return replace(self, start_stage_sent_at=sent_at)
        return self


NO_NOTES = RunNotes()


def summary(run: RunState) -> RunState:
    """What is kept of an ended run: who, how it ended, its totals and times; not its config,
    stages (items, batches, settled ids) or pause/resume ids, which no decision reads again."""
    return replace(run, config=None, stages=EMPTY_RUN.stages, control_ids=frozenset())


@dataclass(frozen=True, slots=True)
class SiteState:
    site_id: int
    runs: PMap[str, RunState] = _NO_RUNS
    notes: PMap[str, RunNotes] = _NO_NOTES
    # Commands answered (by the id of the command), with the time of the answer.
    handled_commands: PMap[UUID, datetime] = _NO_COMMANDS
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
        cause = message.causation_id
        if (
            cause is not None
            and cause not in handled
            and isinstance(message.data, ev.COMMAND_OUTCOMES)
        ):
            handled = handled.set(cause, message.time)
        run_id = message.run_id
        old = self.runs.get(run_id, EMPTY_RUN) if run_id is not None else None
        # An ended run takes nothing more (late or repeated events of it).
        new = mutate(old, message) if old is not None and old.status not in FINISHED else old
        if new is old:  # no run, or a repeat: at most the command is newly known as handled
            return (
                self
                if handled is self.handled_commands
                else replace(self, handled_commands=handled)
            )
        if new.status in FINISHED:
            return self._ended(summary(new), handled, message.time)
        before = self.notes_of(run_id)
        notes = before.after_event(message)
        return SiteState(
            self.site_id,
            self.runs.set(run_id, new),
            self.notes if notes is before else self.notes.set(run_id, notes),
            handled,
            run_id if new.is_active else self.active_run_id,
        )

    def _ended(self, run: RunState, handled: PMap[UUID, datetime], at: datetime) -> SiteState:
        """The site once `run` has ended at `at`: the run as a summary, without notes, and
        what ended or was answered more than FORGET_AFTER before `at` forgotten."""
        horizon = at - FORGET_AFTER
        runs = self.runs.set(run.run_id, run)
        stale = [
            k for k, r in runs.items() if r.status in FINISHED and _before(r.ended_at, horizon)
        ]
        old_commands = [k for k, answered_at in handled.items() if answered_at < horizon]
        return SiteState(
            self.site_id,
            _without(runs, stale),
            self.notes.discard(run.run_id),
            _without(handled, old_commands),
            None if self.active_run_id == run.run_id else self.active_run_id,
        )

    def after_sent(self, message: Envelope, now: datetime) -> SiteState:
        """This state once a command decided for one of its runs has been sent at `now`."""
        notes = self.notes_of(message.run_id)
        sent = notes.after_sent(message, now)
        return self if sent is notes else replace(self, notes=self.notes.set(message.run_id, sent))


def _before(moment: datetime | None, horizon: datetime) -> bool:
    return moment is not None and moment < horizon


def _without(mapping: PMap, keys: list) -> PMap:
    if not keys:
        return mapping
    evolver = mapping.evolver()
    for key in keys:
        del evolver[key]
    return evolver.persistent()


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

    def of_partition(self, partition: int) -> tuple[SiteState, ...]:
        return tuple(
            site
            for site_id, p in self._partitions.items()
            if p == partition and (site := self._sites.get(site_id)) is not None
        )

    def restore(self, partition: int, sites: Iterable[SiteState]) -> None:
        """Sites of `partition` as a snapshot has them."""
        for site in sites:
            self._partitions[site.site_id] = partition
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
