"""Event -> lines, as a pure function of the event and the fold after it.

Every line is derived from the event and the fold, never from the clock or the file, so the
same stream always renders the same bytes: a rebuild reproduces the trace exactly, and a
redelivered event, which the fold ignores, renders nothing (the caller only renders changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contracts import events as ev
from contracts import tracing
from contracts.envelope import Envelope
from contracts.stages import STAGES
from contracts.state import RunState
from contracts.values import ItemRef, percentage, seconds_between


@dataclass(frozen=True)
class Rendered:
    """What one event adds: a trace line, human lines for the main log (and, when the event is
    about a stage, for that stage's log), and summary lines for the aggregate diagnostic log."""

    trace: str | None = None
    human: tuple[str, ...] = ()
    stage: int | None = None
    diagnostic: tuple[str, ...] = field(default=())


def render(after: RunState, message: Envelope) -> Rendered:
    event = message.data
    renderer = _RENDERERS.get(type(event))
    if renderer is None:
        return Rendered()
    return renderer(after, message, event)


# --- formatting helpers ---------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def trace_time(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_time(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _one_line(text: str) -> str:
    # Titles and errors come from users and AI output; a newline would split a log line.
    return " ".join(text.split())


def _elapsed(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.1f}s"


def _trace(message: Envelope, name: str, **fields: object) -> str:
    document = {
        "ts": trace_time(message.time),
        "event": name,
        "run_id": message.run_id,
        "account_id": message.account_id,
        "site_id": message.site_id,
        "message_id": str(message.message_id),
        **fields,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _human(message: Envelope, where: str, text: str) -> str:
    return f"{human_time(message.time)} | {where:<7} | {_one_line(text)}"


def _diagnostic(message: Envelope, where: str, text: str) -> str:
    scope = f"account {message.account_id} site {message.site_id} {message.run_id}"
    return f"{human_time(message.time)} | {scope} | {where:<7} | {_one_line(text)}"


def _lines(
    m: Envelope, trace: str | None, text: str, stage: int | None = None, *, diagnostic: bool = True
) -> Rendered:
    """The event's trace line, and its text in the main log (and in the stage's log, for an event
    about a stage) and, unless `diagnostic` is off, in the aggregate diagnostic log."""
    where = "run" if stage is None else f"stage {stage}"
    summary = (_diagnostic(m, where, text),) if diagnostic else ()
    return Rendered(trace, (_human(m, where, text),), stage, summary)


def _item(item: ItemRef) -> dict[str, object]:
    return {"id": item.id, "title": item.title}


# --- one renderer per event type ------------------------------------------------------------


def _run_started(after: RunState, m: Envelope, e: ev.RunStarted) -> Rendered:
    # The run's OpenTelemetry trace: derived from the run id, the same in every service.
    trace_id = tracing.run_trace_id(m.run_id or "")
    text = (
        f"Run {m.run_id} started ({e.trigger}): estimate {e.estimate} credits, "
        f"balance {e.balance} credits; trace {trace_id}"
    )
    trace = _trace(
        m,
        "run_started",
        trigger=e.trigger,
        estimate=e.estimate,
        balance=e.balance,
        trace_id=trace_id,
    )
    return _lines(m, trace, text)


def _run_rejected(after: RunState, m: Envelope, e: ev.RunRejected) -> Rendered:
    text = f"Run {m.run_id} rejected ({e.code}): {e.reason}"
    return Rendered(diagnostic=(_diagnostic(m, "run", text),))


def _stage_started(after: RunState, m: Envelope, e: ev.StageStarted) -> Rendered:
    definition = STAGES[e.stage]
    text = (
        f"Stage {e.stage} {definition.name} ({definition.type}) started: "
        f"{len(e.items)} pending items"
    )
    trace = _trace(
        m,
        "stage_start",
        stage=e.stage,
        stage_name=definition.name,
        stage_type=definition.type,
        pending=len(e.items),
    )
    return _lines(m, trace, text, e.stage)


def _batch_dispatched(after: RunState, m: Envelope, e: ev.StageBatchDispatched) -> Rendered:
    text = f"Batch {e.batch_id} dispatched: {len(e.item_ids)} items (attempt {e.attempt})"
    return _lines(m, None, text, e.stage, diagnostic=False)


def _item_processed(after: RunState, m: Envelope, e: ev.StageItemProcessed) -> Rendered:
    stage = after.stage(e.stage)
    processed, total = stage.processed_count, stage.total or e.total
    elapsed = seconds_between(stage.started_at, m.time)
    text = (
        f"Processed {processed}/{total}: {e.item.title} (id {e.item.id}), "
        f"{e.outputs} out, {e.credits} credits, elapsed {_elapsed(elapsed)}"
    )
    trace = _trace(
        m,
        "stage_item_processed",
        stage=e.stage,
        processed=processed,
        total=total,
        item=_item(e.item),
        credits=e.credits,
        outputs=e.outputs,
        elapsed_seconds=elapsed,
    )
    return _lines(m, trace, text, e.stage, diagnostic=False)


def _item_failed(after: RunState, m: Envelope, e: ev.StageItemFailed) -> Rendered:
    text = f"Item failed after {e.attempts} attempts: {e.item.title} (id {e.item.id}): {e.error}"
    trace = _trace(
        m,
        "stage_error",
        stage=e.stage,
        item=_item(e.item),
        error=e.error,
        attempts=e.attempts,
        fatal=False,
    )
    return _lines(m, trace, text, e.stage)


def _batch_completed(after: RunState, m: Envelope, e: ev.StageBatchCompleted) -> Rendered:
    stage = after.stage(e.stage)
    processed, failed, total = stage.processed_count, len(stage.failed), stage.total
    elapsed = seconds_between(stage.started_at, m.time)
    share = percentage(processed + failed, total)
    text = (
        f"Progress: {processed}/{total} processed, {failed} failed ({share:g}%), "
        f"{stage.credits} credits, elapsed {_elapsed(elapsed)}"
    )
    if e.halted:
        text += f"; batch {e.batch_id} halted: {e.halted}"
    trace = _trace(
        m,
        "stage_progress",
        stage=e.stage,
        batch_id=e.batch_id,
        processed=processed,
        failed=failed,
        total=total,
        percentage=share,
        credits=stage.credits,
        elapsed_seconds=elapsed,
    )
    return _lines(m, trace, text, e.stage, diagnostic=False)


def _stage_completed(after: RunState, m: Envelope, e: ev.StageCompleted) -> Rendered:
    stage = after.stage(e.stage)
    partial = " (partial)" if e.partial else ""
    text = (
        f"Stage {e.stage} completed{partial}: {stage.processed_count} processed, "
        f"{len(stage.failed)} failed, {stage.outputs} out, {stage.credits} credits, "
        f"elapsed {_elapsed(stage.elapsed_seconds)}"
    )
    trace = _trace(
        m,
        "stage_complete",
        stage=e.stage,
        processed=stage.processed_count,
        failed=len(stage.failed),
        total=stage.total,
        items_in=e.items_in,
        items_out=e.items_out,
        credits=stage.credits,
        elapsed_seconds=stage.elapsed_seconds,
        partial=e.partial,
    )
    return _lines(m, trace, text, e.stage)


def _stage_failed(after: RunState, m: Envelope, e: ev.StageFailed) -> Rendered:
    stage = after.stage(e.stage)
    text = f"Stage {e.stage} failed after {_elapsed(stage.elapsed_seconds)}: {e.error}"
    trace = _trace(
        m,
        "stage_error",
        stage=e.stage,
        error=e.error,
        fatal=True,
        elapsed_seconds=stage.elapsed_seconds,
    )
    return _lines(m, trace, text, e.stage)


def _waiting_for_provider(after: RunState, m: Envelope, e: ev.StageWaitingForProvider) -> Rendered:
    text = (
        f"Waiting for the AI provider ({e.provider} {e.model}) since "
        f"{human_time(e.since)}: {_one_line(e.reason)}. Items wait; none fails for it"
    )
    trace = _trace(
        m,
        "stage_waiting_for_provider",
        stage=e.stage,
        provider=e.provider,
        model=e.model,
        reason=e.reason,
        since=trace_time(e.since),
    )
    return _lines(m, trace, text, e.stage)


def _provider_recovered(after: RunState, m: Envelope, e: ev.StageProviderRecovered) -> Rendered:
    waited = seconds_between(e.since, m.time)
    text = f"The AI provider ({e.provider} {e.model}) answers again after {_elapsed(waited)}"
    trace = _trace(
        m,
        "stage_provider_recovered",
        stage=e.stage,
        provider=e.provider,
        model=e.model,
        since=trace_time(e.since),
        waited_seconds=waited,
    )
    return _lines(m, trace, text, e.stage)


def _waiting_for_provider_batch(
    after: RunState, m: Envelope, e: ev.StageWaitingForProviderBatch
) -> Rendered:
    """Sent when an economy run's stage batch is handed to the provider's batch interface and
    each time its status or counts change: one line per report."""
    batches = ", ".join(e.provider_batch_ids) or "not created yet"
    text = (
        f"Batch {e.batch_id} waiting for the provider's batch ({e.provider} {batches}): "
        f"{e.status}, {e.completed} of {e.total} answered, {e.failed} failed, since "
        f"{human_time(e.since)}. Nothing is charged until the answers are written"
    )
    trace = _trace(
        m,
        "stage_waiting_for_provider_batch",
        stage=e.stage,
        batch_id=e.batch_id,
        provider=e.provider,
        provider_batch_ids=list(e.provider_batch_ids),
        status=e.status,
        total=e.total,
        completed=e.completed,
        failed=e.failed,
        since=trace_time(e.since),
    )
    return _lines(m, trace, text, e.stage, diagnostic=False)


def _run_paused(after: RunState, m: Envelope, e: ev.RunPaused) -> Rendered:
    if after.status != "paused":
        return Rendered()
    text = f"Run paused at stage {after.current_stage}: {e.reason}"
    trace = _trace(m, "run_paused", stage=after.current_stage, reason=e.reason)
    return _lines(m, trace, text)


def _run_resumed(after: RunState, m: Envelope, e: ev.RunResumed) -> Rendered:
    if after.status != "running":
        return Rendered()
    text = f"Run resumed at stage {after.current_stage}" + (f": {e.reason}" if e.reason else "")
    why = {"reason": e.reason} if e.reason else {}
    trace = _trace(m, "run_resumed", stage=after.current_stage, **why)
    return _lines(m, trace, text)


def _run_end(after: RunState, m: Envelope, name: str, text: str, **fields: object) -> Rendered:
    elapsed = seconds_between(after.started_at, m.time)
    text = f"{text}; {after.credits_used} credits used, elapsed {_elapsed(elapsed)}"
    trace = _trace(
        m,
        name,
        stage=after.current_stage,
        credits_used=after.credits_used,
        elapsed_seconds=elapsed,
        **fields,
    )
    return _lines(m, trace, text)


def _run_cancelled(after: RunState, m: Envelope, e: ev.RunCancelled) -> Rendered:
    return _run_end(after, m, "run_cancelled", f"Run cancelled at stage {after.current_stage}")


def _run_completed(after: RunState, m: Envelope, e: ev.RunCompleted) -> Rendered:
    ready = len(e.ready_for_review)
    text = f"Run completed: {ready} content ready for review"
    return _run_end(after, m, "run_completed", text, ready_for_review=list(e.ready_for_review))


def _run_failed(after: RunState, m: Envelope, e: ev.RunFailed) -> Rendered:
    where = f"stage {e.stage}" if e.stage else f"stage {after.current_stage}"
    return _run_end(after, m, "run_failed", f"Run failed at {where}: {e.error}", error=e.error)


_RENDERERS = {
    ev.RunStarted: _run_started,
    ev.RunRejected: _run_rejected,
    ev.StageStarted: _stage_started,
    ev.StageBatchDispatched: _batch_dispatched,
    ev.StageItemProcessed: _item_processed,
    ev.StageItemFailed: _item_failed,
    ev.StageBatchCompleted: _batch_completed,
    ev.StageCompleted: _stage_completed,
    ev.StageFailed: _stage_failed,
    ev.StageWaitingForProvider: _waiting_for_provider,
    ev.StageProviderRecovered: _provider_recovered,
    ev.StageWaitingForProviderBatch: _waiting_for_provider_batch,
    ev.RunPaused: _run_paused,
    ev.RunResumed: _run_resumed,
    ev.RunCancelled: _run_cancelled,
    ev.RunCompleted: _run_completed,
    ev.RunFailed: _run_failed,
}
