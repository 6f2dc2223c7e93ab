"""Events: facts, in the past tense. Run state is the fold of these (see contracts.state)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.envelope import Payload
from contracts.values import REASON_CHARS, ItemRef, RunConfig, StageNumber, Trigger


class RunStarted(Payload):
    TYPE = "automation.run.started"

    trigger: Trigger
    requested_by: str | None = None
    config: RunConfig = Field(default_factory=RunConfig)
    estimate: int = Field(0, ge=0, description="Estimated credits when the run started.")
    balance: int = Field(0, ge=0, description="Account balance when the run started.")
    slot_at: datetime | None = None


class RunRejected(Payload):
    """A start was refused; the run never existed."""

    TYPE = "automation.run.rejected"

    reason: str = Field(description="Why, for people: names the figures or the active run.")
    code: Literal["active_run", "insufficient_credits", "invalid"] = "invalid"
    active_run_id: str | None = None
    estimate: int | None = None
    balance: int | None = None
    required: int | None = Field(None, description="Credits needed: 1.2 x estimate, rounded up.")


class CommandRejected(Payload):
    """A pause / resume / cancel that the run's state does not allow."""

    TYPE = "automation.run.command-rejected"

    command: str = Field(description="Type of the refused command.")
    reason: str
    status: str | None = Field(None, description="Run status when it was refused.")


class RunPaused(Payload):
    TYPE = "automation.run.paused"

    reason: str = Field("requested", description="`requested`, or why the run paused itself.")
    requested_by: str | None = None


class RunResumed(Payload):
    TYPE = "automation.run.resumed"

    requested_by: str | None = None
    reason: str | None = Field(
        None, max_length=REASON_CHARS, description="Why, when nobody asked (credits were added)."
    )


class RunCancelled(Payload):
    TYPE = "automation.run.cancelled"

    requested_by: str | None = None


class RunCompleted(Payload):
    TYPE = "automation.run.completed"

    credits_used: int = Field(ge=0)
    ready_for_review: tuple[int, ...] = Field((), description="Content ids waiting for review.")


class RunFailed(Payload):
    TYPE = "automation.run.failed"

    error: str
    stage: StageNumber | None = None


class StageEvent(Payload):
    """An event about one stage of a run."""

    stage: StageNumber


class StageStarted(StageEvent):
    """A stage picked its items; later arrivals wait for the next run."""

    TYPE = "automation.stage.started"

    items: tuple[ItemRef, ...] = Field(description="Items picked for this run, in order.")


class StageBatchDispatched(StageEvent):
    """The orchestrator handed a batch to the stage's workers (recorded so dispatch replays)."""

    TYPE = "automation.stage.batch-dispatched"

    batch_id: str
    item_ids: tuple[int, ...]
    attempt: int = Field(1, ge=1)
    lease_until: datetime


class StageItemProcessed(StageEvent):
    """One item is done and paid for. The fold numbers it: processed counts come from the fold,
    because with several batches in flight no single worker knows the stage-wide count."""

    TYPE = "automation.stage.item-processed"

    batch_id: str
    item: ItemRef
    total: int = Field(ge=0, description="Items the stage picked.")
    credits: int = Field(0, ge=0, description="Credits charged for this item.")
    outputs: int = Field(0, ge=0, description="Items it produced (clusters, ideas, images...).")


class StageItemFailed(StageEvent):
    """One item failed after its retries; it is skipped and the stage goes on."""

    TYPE = "automation.stage.item-failed"

    batch_id: str
    item: ItemRef
    error: str
    attempts: int = Field(1, ge=1)


class StageBatchCompleted(StageEvent):
    TYPE = "automation.stage.batch-completed"

    batch_id: str
    processed: int = Field(ge=0)
    failed: int = Field(ge=0)
    credits: int = Field(0, ge=0)
    halted: Literal["insufficient_credits", "ai_provider_unavailable"] | None = Field(
        None,
        description="Set when the batch stopped early: the run could not pay, or the AI "
        "provider held its calls back for longer than the longest wait. The run pauses.",
    )
    halt_detail: str | None = Field(
        None,
        max_length=REASON_CHARS,
        description="What the run's pause reason says beyond `halted`.",
    )
    fatal: str | None = Field(
        None,
        max_length=REASON_CHARS,
        description="Set when the batch stopped on an error no item can get past (the AI "
        "provider refuses the credentials, the account or the model): the run then fails.",
    )


class StageBatchLeaseExtended(StageEvent):
    """The worker still works on the batch (waiting at the AI gate, in a slow call, backing
    off): the orchestrator does not dispatch it again before `lease_until`."""

    TYPE = "automation.stage.batch-lease-extended"

    batch_id: str
    attempt: int = Field(ge=1)
    lease_until: datetime


class StageWaitingForProvider(StageEvent):
    """The AI provider holds the stage's calls back (its circuit is open after failures, or it
    asked for a long rest): items wait, none fails, nothing is charged for waiting."""

    TYPE = "automation.stage.waiting-for-provider"

    provider: str
    model: str
    reason: str = Field(max_length=REASON_CHARS)
    since: datetime = Field(description="When the provider began holding calls back.")


class StageProviderRecovered(StageEvent):
    """The provider answers again: the wait that began at `since` is over."""

    TYPE = "automation.stage.provider-recovered"

    provider: str
    model: str
    since: datetime


class StageWaitingForProviderBatch(StageEvent):
    """An economy run's stage batch waits for the provider's batch (its Batch API): the requests
    were handed over, the answers come within 24 hours. Sent when the batch is created and each
    time its status or counts change; nothing is charged until an answer is written."""

    TYPE = "automation.stage.waiting-for-provider-batch"

    batch_id: str = Field(description="The stage batch whose items the provider batch holds.")
    provider: str
    provider_batch_ids: tuple[str, ...] = Field(description="The provider's batch ids.")
    status: str = Field(description="The provider's status: validating, in_progress, ...")
    total: int = Field(ge=0, description="Requests handed over.")
    completed: int = Field(0, ge=0, description="Requests the provider has answered.")
    failed: int = Field(0, ge=0, description="Requests the provider could not answer.")
    since: datetime = Field(description="When the requests were handed over.")


class StageCompleted(StageEvent):
    TYPE = "automation.stage.completed"

    items_in: int = Field(ge=0)
    items_out: int = Field(ge=0)
    failed: int = Field(0, ge=0)
    credits: int = Field(0, ge=0)
    partial: bool = Field(False, description="True when some items failed or were left.")


class StageFailed(StageEvent):
    TYPE = "automation.stage.failed"

    error: str


# The events that answer a run command: their causation id is the command's message id, which is
# how the gateway matches an answer to its request and how the orchestrator knows a command is
# already handled.
COMMAND_OUTCOMES: tuple[type[Payload], ...] = (
    RunStarted,
    RunRejected,
    CommandRejected,
    RunPaused,
    RunResumed,
    RunCancelled,
)
RUN_EVENTS: tuple[type[Payload], ...] = (
    *COMMAND_OUTCOMES,
    RunCompleted,
    RunFailed,
    StageStarted,
    StageBatchDispatched,
    StageItemProcessed,
    StageItemFailed,
    StageBatchCompleted,
    StageBatchLeaseExtended,
    StageWaitingForProvider,
    StageProviderRecovered,
    StageWaitingForProviderBatch,
    StageCompleted,
    StageFailed,
)
# The events after which a run has ended, each with the status it ends in. Every "has this run
# ended?" in the services (the fold's FINISHED, the live stream's close, the workers' stop watch,
# the runs-finished metric, the console) is read from here.
RUN_ENDINGS: dict[type[Payload], str] = {
    RunCompleted: "completed",
    RunCancelled: "cancelled",
    RunFailed: "failed",
    RunRejected: "rejected",
}
RUN_ENDING_TYPES: frozenset[str] = frozenset(event.TYPE for event in RUN_ENDINGS)
