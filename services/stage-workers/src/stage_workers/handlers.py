"""From a raw stage-topic record to the stage's work: decode, refuse what can't be read, route."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRecord

from contracts import tracing
from contracts.codec import UnreadableMessage, decode
from contracts.commands import ProcessBatch, StartStage
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope
from stage_workers.batch import process_batch
from stage_workers.deps import WorkerDeps
from stage_workers.economy import process_economy_batch
from stage_workers.metrics import BATCH_SECONDS
from stage_workers.stages import ITEM_STEPS
from stage_workers.start_stage import start_stage
from stage_workers.tracking import consumer_name

log = logging.getLogger(__name__)
SendDeadLetter = Callable[[DeadLetter], Awaitable[None]]


async def handle_record(
    deps: WorkerDeps, stage: int, record: ConsumerRecord, *, dead_letter: SendDeadLetter
) -> None:
    group = consumer_name(stage)
    try:
        command = read_command(stage, record.value)
    except UnreadableMessage as unreadable:
        log.warning("dead-lettering %s@%s: %s", record.topic, record.offset, unreadable.reason)
        with tracing.continuing(record.headers), tracing.consuming(record, group):
            await dead_letter(refusal(stage, record, unreadable.reason))
        return
    with tracing.consuming(record, group, command) as span:
        if span.is_recording():
            span.set_attributes(batch_attributes(command))
        await dispatch(deps, command)


def read_command(stage: int, raw: bytes | None) -> Envelope:
    command = decode(raw)
    if not isinstance(command.data, StartStage | ProcessBatch):
        raise UnreadableMessage(f"{command.type} is not a stage command")
    if command.data.stage != stage:
        raise UnreadableMessage(f"a stage {command.data.stage} command on the stage {stage} topic")
    if command.run_id != command.data.run_id:
        raise UnreadableMessage("envelope and payload name different runs")
    return command


async def dispatch(deps: WorkerDeps, command: Envelope) -> None:
    with BATCH_SECONDS.labels(str(command.data.stage)).time():
        await _dispatch(deps, command)


async def _dispatch(deps: WorkerDeps, command: Envelope) -> None:
    match command.data:
        case StartStage():
            await start_stage(deps, command)
        case ProcessBatch(stage=stage, economy=True) if stage in ITEM_STEPS and deps.economy:
            await process_economy_batch(deps, ITEM_STEPS[stage], command)
        case ProcessBatch(stage=stage) if stage in ITEM_STEPS:
            await process_batch(deps, ITEM_STEPS[stage], command)
        case ProcessBatch(stage=stage):
            log.warning("stage %s has no batches; ignoring %s", stage, command.message_id)


def batch_attributes(command: Envelope) -> dict[str, object]:
    data = command.data
    attributes: dict[str, object] = {"automation.stage": data.stage}
    if isinstance(data, ProcessBatch):
        attributes |= {
            "automation.batch.id": data.batch_id,
            "automation.batch.items": len(data.item_ids),
            "automation.batch.attempt": data.attempt,
        }
    return attributes


def refusal(stage: int, record: ConsumerRecord, reason: str) -> DeadLetter:
    return DeadLetter.of(consumer_name(stage), record, reason)
