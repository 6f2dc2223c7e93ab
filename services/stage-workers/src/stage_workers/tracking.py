"""The names the worker tracks its work by: its consumer names and the deterministic ids of
the events it writes (a redelivered command writes the same ids, so the outbox dedupes them)."""

from __future__ import annotations

from uuid import UUID

from contracts.envelope import deterministic_id


def consumer_name(stage: int) -> str:
    return f"automation-stage-{stage}"


def stage_started_id(run_id: str, stage: int) -> UUID:
    return deterministic_id(run_id, "stage-started", stage)


def item_processed_id(run_id: str, stage: int, item_id: int) -> UUID:
    return deterministic_id(run_id, stage, item_id, "processed")


def item_failed_id(run_id: str, stage: int, item_id: int) -> UUID:
    return deterministic_id(run_id, stage, item_id, "failed")


def batch_completed_id(run_id: str, stage: int, batch_id: str, attempt: int) -> UUID:
    return deterministic_id(run_id, stage, batch_id, attempt, "batch-completed")


def provider_waiting_id(run_id: str, stage: int, lane: str, since: float) -> UUID:
    """One per run, stage and wait: every batch that meets the same wait writes the same id."""
    return deterministic_id(run_id, stage, lane, since, "provider-waiting")


def provider_recovered_id(run_id: str, stage: int, lane: str, since: float) -> UUID:
    return deterministic_id(run_id, stage, lane, since, "provider-recovered")
