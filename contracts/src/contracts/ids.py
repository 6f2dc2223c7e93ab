"""The deterministic message ids, each recipe named once: who decides a message names it here, so
a redelivered command or a replayed decision writes the same id and the consumers (the outbox,
the orchestrator's dedupe, the log-sink) see one message. A recipe never changes: a changed id
is a new message to everyone downstream."""

from __future__ import annotations

from uuid import UUID

from contracts.envelope import deterministic_id

# --- decided by the orchestrator -------------------------------------------------------------


def command_outcome(command_id: UUID) -> UUID:
    """The event answering a run command (started, rejected, paused, ...)."""
    return deterministic_id(command_id, "outcome")


def run_correlation(run_id: str) -> UUID:
    """The correlation id of a run's messages when its start named none."""
    return deterministic_id(run_id, "correlation")


def pause_for_halt(halted_by: object) -> UUID:
    """The pause that follows a worker's halt (the halting message's id)."""
    return deterministic_id(halted_by, "pause")


def batch_dispatched(run_id: str, batch_id: str, attempt: int) -> UUID:
    return deterministic_id(run_id, "dispatched", batch_id, attempt)


def process_batch(run_id: str, batch_id: str, attempt: int) -> UUID:
    return deterministic_id(run_id, "dispatch", batch_id, attempt)


def start_stage(run_id: str, stage: int) -> UUID:
    return deterministic_id(run_id, "stage-started-cmd", stage)


def stage_completed(run_id: str, stage: int) -> UUID:
    return deterministic_id(run_id, "stage-completed", stage)


def stage_failed(run_id: str, stage: int) -> UUID:
    return deterministic_id(run_id, "stage-failed", stage)


def run_completed(run_id: str) -> UUID:
    return deterministic_id(run_id, "run-completed")


def run_failed(run_id: str) -> UUID:
    return deterministic_id(run_id, "run-failed")


def resume_when_funded(run_id: str, paused_at: str) -> UUID:
    """The credit watch's resume of a run paused for credits (ISO time of the pause, or "")."""
    return deterministic_id(run_id, "funded", paused_at)


def scheduled_start(run_id: str) -> UUID:
    return deterministic_id(run_id, "scheduled-start")


# --- decided by the stage workers ------------------------------------------------------------


def stage_started(run_id: str, stage: int) -> UUID:
    return deterministic_id(run_id, "stage-started", stage)


def item_processed(run_id: str, stage: int, item_id: int) -> UUID:
    return deterministic_id(run_id, stage, item_id, "processed")


def item_failed(run_id: str, stage: int, item_id: int) -> UUID:
    return deterministic_id(run_id, stage, item_id, "failed")


def batch_completed(run_id: str, stage: int, batch_id: str, attempt: int) -> UUID:
    return deterministic_id(run_id, stage, batch_id, attempt, "batch-completed")


def provider_waiting(run_id: str, stage: int, lane: str, since: float) -> UUID:
    """One per run, stage and wait: every batch that meets the same wait writes the same id."""
    return deterministic_id(run_id, stage, lane, since, "provider-waiting")


def provider_recovered(run_id: str, stage: int, lane: str, since: float) -> UUID:
    return deterministic_id(run_id, stage, lane, since, "provider-recovered")


def provider_batch_waiting(
    run_id: str, stage: int, batch_id: str, status: str, completed: int, failed: int
) -> UUID:
    """One per state of a stage batch's provider batch: polling again finds the same id."""
    return deterministic_id(
        run_id, stage, batch_id, status, completed, failed, "provider-batch-waiting"
    )
