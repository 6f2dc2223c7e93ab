"""Commands: imperative messages that ask a service to do something. It may refuse."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from contracts.envelope import Payload
from contracts.values import REASON_CHARS, RunConfig, StageNumber, Trigger


class StartRun(Payload):
    """Ask the orchestrator to start a run for a site (gateway or scheduler)."""

    TYPE = "automation.run.start"

    run_id: str = Field(description="Proposed id, `run_YYYYMMDD_HHMMSS_<trigger>_<suffix>`.")
    trigger: Trigger = Field(description="manual (a person) or scheduled (the scheduler).")
    requested_by: str | None = Field(None, description="User or component that asked.")
    config: RunConfig = Field(default_factory=RunConfig, description="Site config to run with.")
    estimate: int = Field(0, ge=0, description="Estimated credits for the pending work.")
    balance: int = Field(0, ge=0, description="Account balance when the start was asked for.")
    slot_at: datetime | None = Field(None, description="Scheduled slot this run is for, if any.")


class RunControl(Payload):
    """A command about a run that exists: which run, and who asked."""

    run_id: str
    requested_by: str | None = None


class PauseRun(RunControl):
    """Pause a running run after the item in flight."""

    TYPE = "automation.run.pause"


class ResumeRun(RunControl):
    """Resume a paused run where it stopped."""

    TYPE = "automation.run.resume"

    reason: str | None = Field(
        None, max_length=REASON_CHARS, description="Why, when nobody asked (credits were added)."
    )


class CancelRun(RunControl):
    """Cancel a running or paused run after the item in flight."""

    TYPE = "automation.run.cancel"


class StageCommand(Payload):
    """A command to one stage's workers, about one run."""

    run_id: str
    stage: StageNumber


class StartStage(StageCommand):
    """Ask a stage's workers to pick the stage's items for a run (picked once, at stage start)."""

    TYPE = "automation.stage.start"


class ProcessBatch(StageCommand):
    """Ask a stage's workers to process a bounded batch of items."""

    TYPE = "automation.stage.process-batch"

    batch_id: str = Field(description="Deterministic id of the batch within the run and stage.")
    item_ids: tuple[int, ...] = Field(description="Items to process, in order.")
    attempt: int = Field(1, ge=1, description="Dispatch attempt; >1 after a lease expired.")
    lease_until: datetime = Field(description="After this the orchestrator may re-dispatch.")
    economy: bool = Field(
        False,
        description="An economy run's batch: its AI requests go to the provider's batch "
        "interface together, rather than one call each.",
    )
    unit_items: int | None = Field(
        None,
        ge=1,
        description="For a stage whose one AI call takes several items (stage 1): how many go "
        "in one call; the whole batch when absent.",
    )


RUN_COMMANDS: tuple[type[Payload], ...] = (StartRun, PauseRun, ResumeRun, CancelRun)
STAGE_COMMANDS: tuple[type[Payload], ...] = (StartStage, ProcessBatch)
