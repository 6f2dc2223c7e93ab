"""Run state as a pure fold of the run's events.

`fold(events, state)` is the only way run state comes to be, in every service. It is total (any
sequence of events folds without raising), deterministic (it reads nothing but the events) and
idempotent: Kafka delivers at least once, so an event seen again, right away or much later,
changes nothing. Streams are taken to begin with the run's first event (RunStarted or
RunRejected), which per-partition order guarantees; events before it are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pyrsistent import PMap, PSet, pmap, pset

from contracts import events as ev
from contracts.envelope import Envelope, Payload
from contracts.values import ItemRef, RunConfig, seconds_between

RunStatus = Literal["none", "running", "paused", "completed", "cancelled", "failed", "rejected"]
StageStatus = Literal["pending", "running", "completed", "failed"]
ACTIVE: frozenset[str] = frozenset({"running", "paused"})
FINISHED: frozenset[str] = frozenset(ev.RUN_ENDINGS.values())
# Persistent (structurally shared) sets and maps: adding an item or a batch costs O(log n)
# instead of copying the whole collection, so folding a stage stays linear in its events.
_NO_IDS: PSet[int] = pset()
_NO_BATCHES: PMap[str, Batch] = pmap()
_NO_BATCH_IDS: PSet[str] = pset()


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    item_ids: tuple[int, ...]
    attempt: int
    lease_until: datetime
    done: bool = False


@dataclass(frozen=True, slots=True)
class ProviderWait:
    """The AI provider holds the stage's calls back: why, since when, and which model."""

    provider: str
    model: str
    reason: str
    since: datetime


@dataclass(frozen=True, slots=True)
class ProviderBatchWait:
    """An economy run's stage batch waits for the provider's batch: its state and counts."""

    batch_id: str  # the stage batch
    provider: str
    provider_batch_ids: tuple[str, ...]
    status: str
    total: int
    completed: int
    failed: int
    since: datetime


@dataclass(frozen=True, slots=True)
class StageState:
    number: int
    status: StageStatus = "pending"
    items: tuple[ItemRef, ...] = ()
    processed: PSet[int] = _NO_IDS
    failed: PSet[int] = _NO_IDS
    outputs: int = 0
    credits: int = 0
    batches: PMap[str, Batch] = _NO_BATCHES
    # The few batches not done yet, by id, so that reading them does not walk every batch the
    # stage ever had; and the index in `items` of the first item not settled, which only moves
    # forward. With both, what is in flight and what comes next cost what they hold, not the
    # stage's size.
    in_flight_ids: PSet[str] = _NO_BATCH_IDS
    open_from: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    partial: bool = False
    error: str | None = None
    # An error no item can get past, from a worker's batch: the stage fails on it.
    fatal: str | None = None
    # Set while the AI provider holds the stage's calls back.
    waiting: ProviderWait | None = None
    # Set while a stage batch of an economy run waits for the provider's batch.
    provider_batch: ProviderBatchWait | None = None

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def processed_count(self) -> int:
        return len(self.processed)

    def is_settled(self, item_id: int) -> bool:
        """Needs no more work: processed or given up on."""
        return item_id in self.processed or item_id in self.failed

    @property
    def open_count(self) -> int:
        """How many picked items are neither processed nor failed (only picked items are ever
        dispatched, so every settled id is a picked one)."""
        return max(self.total - len(self.processed) - len(self.failed), 0)

    def open_items(self) -> tuple[ItemRef, ...]:
        """Picked items that are neither processed nor failed, in pick order."""
        return tuple(item for item in self.items[self.open_from :] if not self.is_settled(item.id))

    def in_flight(self) -> tuple[Batch, ...]:
        return tuple(self.batches[batch_id] for batch_id in self.in_flight_ids)

    @property
    def elapsed_seconds(self) -> float | None:
        return seconds_between(self.started_at, self.finished_at)


def _fresh_stages() -> tuple[StageState, ...]:
    return tuple(StageState(n) for n in range(1, 8))


@dataclass(frozen=True, slots=True)
class RunState:
    run_id: str | None = None
    account_id: int | None = None
    site_id: int | None = None
    trigger: str | None = None
    status: RunStatus = "none"
    current_stage: int = 0
    config: RunConfig | None = None
    stages: tuple[StageState, ...] = field(default_factory=_fresh_stages)
    credits_used: int = 0
    error: str | None = None
    pause_reason: str | None = None
    started_at: datetime | None = None
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    cancelled_at: datetime | None = None
    ended_at: datetime | None = None
    last_event_at: datetime | None = None
    # Ids of the pause/resume events applied. Those are the only transitions that can repeat
    # (running -> paused -> running), so a redelivered one must be told apart from a new one.
    control_ids: frozenset[UUID] = frozenset()

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def stage(self, number: int) -> StageState:
        return self.stages[number - 1]

    def with_stage(self, stage: StageState) -> RunState:
        stages = list(self.stages)
        stages[stage.number - 1] = stage
        return replace(self, stages=tuple(stages))


Mutator = Callable[[RunState, Envelope, Payload], RunState]


def _opened(s: RunState, m: Envelope, **fields: Any) -> RunState:
    """The run's first event: whose run it is comes from the envelope."""
    if s.status != "none":
        return s
    return replace(s, run_id=m.run_id, account_id=m.account_id, site_id=m.site_id, **fields)


def _run_started(s: RunState, m: Envelope, e: ev.RunStarted) -> RunState:
    return _opened(
        s,
        m,
        trigger=e.trigger,
        status="running",
        current_stage=1,
        config=e.config,
        started_at=m.time,
    )


def _run_rejected(s: RunState, m: Envelope, e: ev.RunRejected) -> RunState:
    return _opened(s, m, status="rejected", error=e.reason, ended_at=m.time)


def _controlled(s: RunState, m: Envelope, applies_to: RunStatus, **fields: Any) -> RunState:
    """A pause or resume: applied when the run is `applies_to`, and remembered by id either way,
    so that its redelivery changes nothing."""
    if m.message_id in s.control_ids:
        return s
    seen = s.control_ids | {m.message_id}
    if s.status != applies_to:
        return replace(s, control_ids=seen)
    return replace(s, control_ids=seen, **fields)


def _run_paused(s: RunState, m: Envelope, e: ev.RunPaused) -> RunState:
    return _controlled(s, m, "running", status="paused", paused_at=m.time, pause_reason=e.reason)


def _run_resumed(s: RunState, m: Envelope, e: ev.RunResumed) -> RunState:
    return _controlled(s, m, "paused", status="running", resumed_at=m.time, pause_reason=None)


def _run_ended(s: RunState, m: Envelope, status: RunStatus, **fields: Any) -> RunState:
    """An active run over; an ended one stays as it ended."""
    if s.status not in ACTIVE:
        return s
    return replace(s, status=status, ended_at=m.time, **fields)


def _run_cancelled(s: RunState, m: Envelope, e: ev.RunCancelled) -> RunState:
    return _run_ended(s, m, "cancelled", cancelled_at=m.time)


def _run_completed(s: RunState, m: Envelope, e: ev.RunCompleted) -> RunState:
    return _run_ended(s, m, "completed")


def _run_failed(s: RunState, m: Envelope, e: ev.RunFailed) -> RunState:
    return _run_ended(s, m, "failed", error=e.error)


def _stage_started(s: RunState, m: Envelope, e: ev.StageStarted) -> RunState:
    stage = s.stage(e.stage)
    if stage.status != "pending":
        return s
    started = _advance(replace(stage, status="running", items=e.items, started_at=m.time))
    return replace(s.with_stage(started), current_stage=max(s.current_stage, e.stage))


def _batch_dispatched(s: RunState, m: Envelope, e: ev.StageBatchDispatched) -> RunState:
    stage = s.stage(e.stage)
    known = stage.batches.get(e.batch_id)
    if known is not None and (known.done or known.attempt >= e.attempt):
        return s
    batch = Batch(e.batch_id, e.item_ids, e.attempt, e.lease_until)
    dispatched = replace(
        stage,
        batches=stage.batches.set(e.batch_id, batch),
        in_flight_ids=stage.in_flight_ids.add(e.batch_id),
    )
    return s.with_stage(dispatched)


def _item_processed(s: RunState, m: Envelope, e: ev.StageItemProcessed) -> RunState:
    stage = s.stage(e.stage)
    if e.item.id in stage.processed:
        return s
    done = _advance(
        replace(
            stage,
            processed=stage.processed.add(e.item.id),
            failed=stage.failed.discard(e.item.id),
            outputs=stage.outputs + e.outputs,
            credits=stage.credits + e.credits,
        )
    )
    return replace(s.with_stage(done), credits_used=s.credits_used + e.credits)


def _item_failed(s: RunState, m: Envelope, e: ev.StageItemFailed) -> RunState:
    stage = s.stage(e.stage)
    if stage.is_settled(e.item.id):
        return s
    return s.with_stage(_advance(replace(stage, failed=stage.failed.add(e.item.id))))


def _batch_completed(s: RunState, m: Envelope, e: ev.StageBatchCompleted) -> RunState:
    stage = s.stage(e.stage)
    known = stage.batches.get(e.batch_id)
    if known is not None and known.done:
        return s
    # A completion seen before its dispatch still closes the batch, so that the dispatch,
    # when it comes, cannot reopen it.
    done = replace(known, done=True) if known else Batch(e.batch_id, (), 0, m.time, done=True)
    answered = stage.provider_batch is not None and stage.provider_batch.batch_id == e.batch_id
    completed = replace(
        stage,
        batches=stage.batches.set(e.batch_id, done),
        in_flight_ids=stage.in_flight_ids.discard(e.batch_id),
        fatal=stage.fatal or e.fatal,
        provider_batch=None if answered else stage.provider_batch,
    )
    return s.with_stage(completed)


def _lease_extended(s: RunState, m: Envelope, e: ev.StageBatchLeaseExtended) -> RunState:
    stage = s.stage(e.stage)
    known = stage.batches.get(e.batch_id)
    if known is None or known.done or known.attempt != e.attempt:
        return s
    if e.lease_until <= known.lease_until:
        return s
    extended = replace(known, lease_until=e.lease_until)
    return s.with_stage(replace(stage, batches=stage.batches.set(e.batch_id, extended)))


def _waiting_for_provider(s: RunState, m: Envelope, e: ev.StageWaitingForProvider) -> RunState:
    stage = s.stage(e.stage)
    if stage.status != "running" or (stage.waiting and stage.waiting.since >= e.since):
        return s
    waiting = ProviderWait(e.provider, e.model, e.reason, e.since)
    return s.with_stage(replace(stage, waiting=waiting))


def _provider_recovered(s: RunState, m: Envelope, e: ev.StageProviderRecovered) -> RunState:
    stage = s.stage(e.stage)
    if stage.waiting is None or stage.waiting.since > e.since:
        return s  # a later wait began meanwhile: it is not over
    return s.with_stage(replace(stage, waiting=None))


def _waiting_for_provider_batch(
    s: RunState, m: Envelope, e: ev.StageWaitingForProviderBatch
) -> RunState:
    stage = s.stage(e.stage)
    known = stage.batches.get(e.batch_id)
    if stage.status != "running" or (known is not None and known.done):
        return s  # the batch is over: a late report must not bring its wait back
    waiting = ProviderBatchWait(
        e.batch_id,
        e.provider,
        e.provider_batch_ids,
        e.status,
        e.total,
        e.completed,
        e.failed,
        e.since,
    )
    if stage.provider_batch == waiting:
        return s  # a redelivery: the same report changes nothing
    return s.with_stage(replace(stage, provider_batch=waiting))


def _advance(stage: StageState) -> StageState:
    """Move `open_from` past the items settled now. Each item is passed once in a stage's
    life, so over the stage this costs one step per item."""
    index, items = stage.open_from, stage.items
    while index < len(items) and stage.is_settled(items[index].id):
        index += 1
    return stage if index == stage.open_from else replace(stage, open_from=index)


def _stage_completed(s: RunState, m: Envelope, e: ev.StageCompleted) -> RunState:
    stage = s.stage(e.stage)
    if stage.status in ("completed", "failed"):
        return s
    return s.with_stage(_ended(stage, "completed", m, partial=e.partial))


def _stage_failed(s: RunState, m: Envelope, e: ev.StageFailed) -> RunState:
    stage = s.stage(e.stage)
    if stage.status in ("completed", "failed"):
        return s
    return s.with_stage(_ended(stage, "failed", m, error=e.error))


def _ended(stage: StageState, status: StageStatus, m: Envelope, **fields: Any) -> StageState:
    """The stage over: nothing is waited for any more."""
    return replace(
        stage, status=status, finished_at=m.time, waiting=None, provider_batch=None, **fields
    )


MUTATORS: dict[type[Payload], Mutator] = {
    ev.RunStarted: _run_started,
    ev.RunRejected: _run_rejected,
    ev.RunPaused: _run_paused,
    ev.RunResumed: _run_resumed,
    ev.RunCancelled: _run_cancelled,
    ev.RunCompleted: _run_completed,
    ev.RunFailed: _run_failed,
    ev.StageStarted: _stage_started,
    ev.StageBatchDispatched: _batch_dispatched,
    ev.StageItemProcessed: _item_processed,
    ev.StageItemFailed: _item_failed,
    ev.StageBatchCompleted: _batch_completed,
    ev.StageBatchLeaseExtended: _lease_extended,
    ev.StageWaitingForProvider: _waiting_for_provider,
    ev.StageProviderRecovered: _provider_recovered,
    ev.StageWaitingForProviderBatch: _waiting_for_provider_batch,
    ev.StageCompleted: _stage_completed,
    ev.StageFailed: _stage_failed,
}


_OPENERS = (ev.RunStarted, ev.RunRejected)


def mutate(state: RunState, message: Envelope) -> RunState:
    """Apply one event. Commands, other runs' events and unknown types leave the state as is."""
    if state.run_id is not None and message.run_id != state.run_id:
        return state
    if state.status == "none" and type(message.data) not in _OPENERS:
        return state
    mutator = MUTATORS.get(type(message.data))
    if mutator is None:
        return state
    new = mutator(state, message, message.data)
    if new is state:
        return state
    return replace(new, last_event_at=message.time)


def fold(events: Iterable[Envelope], state: RunState | None = None) -> RunState:
    state = state if state is not None else RunState()
    for message in events:
        state = mutate(state, message)
    return state
