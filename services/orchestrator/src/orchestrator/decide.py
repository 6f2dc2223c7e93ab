"""The orchestrator's decisions, pure: state plus a command (or the clock) in, messages out.
The state and the notes are immutable; a caller folds in what comes out (transitions.py, and
`tick` itself, which folds its own events to decide the next step).

Every message decided here has a deterministic id, so deciding again after a restart or a
redelivery yields the same message, which every consumer recognises as a repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from uuid import UUID

from contracts import commands as cmd
from contracts import events as ev
from contracts import ids
from contracts.admission import refuse_start
from contracts.envelope import Envelope, Payload, new_message
from contracts.stages import STAGES
from contracts.state import Batch, RunState, StageState, fold
from orchestrator.sites import RunNotes, SiteState

SOURCE = "/automation/orchestrator"
MANUAL_STAGE = 7
# A tick folds its own events and decides again, so a completed stage starts the next one (or a
# manual stage completes the run) at once; this bounds that chain.
MAX_STEPS_PER_TICK = 4
# The most items an economy batch holds: the provider takes up to 50,000 requests in one batch,
# and no stage makes more than one request per item.
ECONOMY_BATCH_ITEMS = 50_000


@dataclass(frozen=True, slots=True)
class Limits:
    lease_seconds: float = 120
    start_stage_retry_seconds: float = 30


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A decided message and where it goes: run events (stage None) or stage n's commands."""

    message: Envelope
    stage: int | None = None

    @property
    def is_event(self) -> bool:
        return self.stage is None

    @property
    def key(self) -> bytes:
        data = self.message.data
        if isinstance(data, cmd.ProcessBatch):
            # Batch ids repeat across runs ("4-1"); with the run in the key, the batches of
            # many concurrent runs spread over the stage's partitions.
            return f"{data.run_id}:{data.batch_id}".encode()
        if isinstance(data, cmd.StartStage):
            return data.run_id.encode()
        return self.message.key


# --- run commands -------------------------------------------------------------------------


def on_command(site: SiteState, message: Envelope, now: datetime) -> list[Outgoing]:
    if message.message_id in site.handled_commands:
        return []
    handler = _COMMAND_HANDLERS.get(type(message.data))
    return handler(site, message, now) if handler else []


def _outcome(command: Envelope, payload: Payload, now: datetime) -> Outgoing:
    """The one event that answers a command: the gateway finds it by causation id."""
    return Outgoing(
        new_message(
            payload,
            source=SOURCE,
            account_id=command.account_id,
            site_id=command.site_id,
            run_id=command.data.run_id,
            caused_by=command,
            message_id=ids.command_outcome(command.message_id),
            time=now,
        )
    )


def _start_run(site: SiteState, message: Envelope, now: datetime) -> list[Outgoing]:
    start: cmd.StartRun = message.data
    if site.run(start.run_id) is not None:
        return []
    active = site.active_run()
    refused = refuse_start(
        active_run_id=active.run_id if active else None,
        estimate=start.estimate,
        balance=start.balance,
    )
    if refused is not None:
        return [_outcome(message, refused, now)]
    started = _outcome(
        message,
        ev.RunStarted(
            trigger=start.trigger,
            requested_by=start.requested_by,
            config=start.config,
            estimate=start.estimate,
            balance=start.balance,
            slot_at=start.slot_at,
        ),
        now,
    )
    run_ids = RunIds(message.account_id, message.site_id, start.run_id, message.correlation_id)
    return [started, _start_stage_command(run_ids, 1, now)]


_CONTROLS: dict[type[Payload], tuple[frozenset[str], Callable[[Payload], Payload]]] = {
    cmd.PauseRun: (frozenset({"running"}), lambda c: ev.RunPaused(requested_by=c.requested_by)),
    cmd.ResumeRun: (
        frozenset({"paused"}),
        lambda c: ev.RunResumed(requested_by=c.requested_by, reason=c.reason),
    ),
    cmd.CancelRun: (
        frozenset({"running", "paused"}),
        lambda c: ev.RunCancelled(requested_by=c.requested_by),
    ),
}


def _control_run(site: SiteState, message: Envelope, now: datetime) -> list[Outgoing]:
    command = message.data
    allowed_from, outcome = _CONTROLS[type(command)]
    run = site.run(command.run_id)
    if run is None or run.status == "rejected":  # a rejected start never made a run
        refused = ev.CommandRejected(command=message.type, reason="unknown run")
        return [_outcome(message, refused, now)]
    if run.status not in allowed_from:
        reason = f"run {run.run_id} is {run.status}"
        refused = ev.CommandRejected(command=message.type, reason=reason, status=run.status)
        return [_outcome(message, refused, now)]
    return [_outcome(message, outcome(command), now)]


_COMMAND_HANDLERS = {
    cmd.StartRun: _start_run,
    cmd.PauseRun: _control_run,
    cmd.ResumeRun: _control_run,
    cmd.CancelRun: _control_run,
}


# --- the clock: what a running run needs next ---------------------------------------------


def tick(run: RunState, notes: RunNotes, now: datetime, limits: Limits) -> list[Outgoing]:
    """Level-triggered: looks at where the run is, not at what just happened, so it can be
    called any time, any number of times."""
    decided: list[Outgoing] = []
    for _ in range(MAX_STEPS_PER_TICK):
        step = _tick_once(run, notes, now, limits)
        decided += step
        events = [o.message for o in step if o.is_event]
        # After a dispatch nothing more is due until the workers answer.
        if not events or isinstance(events[0].data, ev.StageBatchDispatched):
            break
        run = fold(events, run)
    return decided


def _tick_once(run: RunState, notes: RunNotes, now: datetime, limits: Limits) -> list[Outgoing]:
    if run.status != "running" or run.config is None:
        return []
    if notes.halted_by is not None:
        paused = ev.RunPaused(reason=notes.halt_reason or "insufficient_credits")
        return [_run_event(run, notes, paused, now, ids.pause_for_halt(notes.halted_by))]
    stage = run.stage(run.current_stage)
    match stage.status:
        case "pending":
            return _start_stage(run, notes, stage.number, now, limits)
        case "running" if stage.number == MANUAL_STAGE:
            return _finish_manual_stage(run, notes, stage, now)
        case "running":
            return _work_on_stage(run, notes, stage, now, limits)
        case "completed":
            return _after_stage(run, notes, stage, now, limits)
        case _:
            return [_run_failed(run, notes, stage, now)]


def _start_stage(
    run: RunState, notes: RunNotes, number: int, now: datetime, limits: Limits
) -> list[Outgoing]:
    sent_at = notes.start_stage_sent_at.get(number)
    if sent_at is not None and _seconds(sent_at, now) < limits.start_stage_retry_seconds:
        return []
    return [_start_stage_command(RunIds.of(run, notes), number, now)]


def _after_stage(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime, limits: Limits
) -> list[Outgoing]:
    if stage.number == MANUAL_STAGE:
        return [_run_completed(run, notes, stage, now)]
    finished_at = stage.finished_at or now
    if _seconds(finished_at, now) < run.config.between_stage_delay:
        return []
    return _start_stage(run, notes, stage.number + 1, now, limits)


def _work_on_stage(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime, limits: Limits
) -> list[Outgoing]:
    if stage.fatal is not None:
        # A worker met an error no item can get past: the other items would fail the same way.
        return _fail_stage(run, notes, stage, now, f"stage {stage.number}: {stage.fatal}")
    first_open = stage.open_from
    in_flight = stage.in_flight()
    if first_open == stage.total and not any(b.lease_until >= now for b in in_flight):
        # Every item is settled; a batch whose completion never came is not waited for past
        # its lease.
        return _finish_stage(run, notes, stage, now)
    decided = _redispatch_expired(run, notes, stage, now, limits)
    room = run.config.stage_concurrency - len(in_flight)
    if room <= 0 or not _delay_passed(run, notes, stage, now):
        return decided
    economy = _economy(run, stage.number)
    size = ECONOMY_BATCH_ITEMS if economy else run.config.batch_size(stage.number)
    free = _free_items(stage, first_open, in_flight, room * size)
    for k, start in enumerate(range(0, min(len(free), room * size), size), len(stage.batches) + 1):
        batch_id = f"{stage.number}-{k}"
        item_ids = tuple(free[start : start + size])
        decided += _dispatch(run, notes, stage.number, batch_id, item_ids, 1, now, limits)
    return decided


def _economy(run: RunState, stage: int) -> bool:
    """Whether the stage's items go to the provider's batch interface, all in one batch (an AI
    stage of an economy run), rather than in batches of the configured size."""
    trigger = "scheduled" if run.trigger == "scheduled" else "manual"
    return STAGES[stage].type == "AI" and run.config.economy(trigger)


def _free_items(
    stage: StageState, first_open: int, in_flight: tuple[Batch, ...], wanted: int
) -> list[int]:
    """Up to `wanted` open items in pick order that no batch in flight holds."""
    busy = {item_id for batch in in_flight for item_id in batch.item_ids}
    free: list[int] = []
    for item in islice(stage.items, first_open, None):
        if len(free) == wanted:
            break
        if item.id not in stage.processed and item.id not in stage.failed and item.id not in busy:
            free.append(item.id)
    return free


def _redispatch_expired(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime, limits: Limits
) -> list[Outgoing]:
    decided: list[Outgoing] = []
    for batch in stage.in_flight():
        still_open = tuple(i for i in batch.item_ids if not stage.is_settled(i))
        if batch.lease_until < now and still_open:
            decided += _dispatch(
                run, notes, stage.number, batch.batch_id, still_open, batch.attempt + 1, now, limits
            )
    return decided


def _delay_passed(run: RunState, notes: RunNotes, stage: StageState, now: datetime) -> bool:
    last_done = notes.batch_done_at.get(stage.number)
    return last_done is None or _seconds(last_done, now) >= run.config.within_stage_delay


def _dispatch(
    run: RunState,
    notes: RunNotes,
    stage: int,
    batch_id: str,
    item_ids: tuple[int, ...],
    attempt: int,
    now: datetime,
    limits: Limits,
) -> list[Outgoing]:
    run_ids = RunIds.of(run, notes)
    lease_until = now + timedelta(seconds=limits.lease_seconds)
    fields = dict(stage=stage, batch_id=batch_id, item_ids=item_ids, attempt=attempt)
    recorded = ev.StageBatchDispatched(**fields, lease_until=lease_until)
    economy = (
        {"economy": True, "unit_items": run.config.batch_size(stage)}
        if _economy(run, stage)
        else {}
    )
    command = cmd.ProcessBatch(run_id=run.run_id, **fields, lease_until=lease_until, **economy)
    return [
        Outgoing(
            _message(run_ids, recorded, now, ids.batch_dispatched(run.run_id, batch_id, attempt))
        ),
        Outgoing(
            _message(run_ids, command, now, ids.process_batch(run.run_id, batch_id, attempt)), stage
        ),
    ]


def _finish_stage(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime
) -> list[Outgoing]:
    failed = len(stage.failed)
    if stage.total and failed >= stage.total:
        return _fail_stage(
            run, notes, stage, now, f"stage {stage.number}: all {stage.total} items failed"
        )
    completed = ev.StageCompleted(
        stage=stage.number,
        items_in=stage.total,
        items_out=stage.outputs,
        failed=failed,
        credits=stage.credits,
        partial=failed > 0,
    )
    return [_run_event(run, notes, completed, now, ids.stage_completed(run.run_id, stage.number))]


def _fail_stage(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime, error: str
) -> list[Outgoing]:
    stage_failed = ev.StageFailed(stage=stage.number, error=error)
    return [
        _run_event(run, notes, stage_failed, now, ids.stage_failed(run.run_id, stage.number)),
        _run_failed(run, notes, stage, now, error),
    ]


def _finish_manual_stage(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime
) -> list[Outgoing]:
    completed = ev.StageCompleted(stage=stage.number, items_in=stage.total, items_out=0)
    return [
        _run_event(run, notes, completed, now, ids.stage_completed(run.run_id, stage.number)),
        _run_completed(run, notes, stage, now),
    ]


def _run_completed(
    run: RunState, notes: RunNotes, manual_stage: StageState, now: datetime
) -> Outgoing:
    completed = ev.RunCompleted(
        credits_used=run.credits_used,
        ready_for_review=tuple(item.id for item in manual_stage.items),
    )
    return _run_event(run, notes, completed, now, ids.run_completed(run.run_id))


def _run_failed(
    run: RunState, notes: RunNotes, stage: StageState, now: datetime, error: str | None = None
) -> Outgoing:
    failed = ev.RunFailed(error=error or stage.error or "stage failed", stage=stage.number)
    return _run_event(run, notes, failed, now, ids.run_failed(run.run_id))


# --- envelopes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunIds:
    account_id: int
    site_id: int
    run_id: str
    correlation_id: UUID

    @classmethod
    def of(cls, run: RunState, notes: RunNotes) -> RunIds:
        correlation = notes.correlation_id or ids.run_correlation(run.run_id)
        return cls(run.account_id, run.site_id, run.run_id, correlation)


def _start_stage_command(run_ids: RunIds, number: int, now: datetime) -> Outgoing:
    start = cmd.StartStage(run_id=run_ids.run_id, stage=number)
    message_id = ids.start_stage(run_ids.run_id, number)
    return Outgoing(_message(run_ids, start, now, message_id), number)


def _run_event(
    run: RunState, notes: RunNotes, payload: Payload, now: datetime, message_id: UUID
) -> Outgoing:
    return Outgoing(_message(RunIds.of(run, notes), payload, now, message_id))


def _message(run_ids: RunIds, payload: Payload, now: datetime, message_id: UUID) -> Envelope:
    return new_message(
        payload,
        source=SOURCE,
        account_id=run_ids.account_id,
        site_id=run_ids.site_id,
        run_id=run_ids.run_id,
        message_id=message_id,
        correlation_id=run_ids.correlation_id,
        time=now,
    )


def _seconds(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()
