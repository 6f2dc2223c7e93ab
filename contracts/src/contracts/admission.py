"""Whether a run may start: one active run per site, and credits of at least 1.2 x the estimate;
and whether a paused run may resume: credits for at least the next item of its stage.

A start is checked twice: the gateway asks before it sends StartRun, for an early answer from
its read model; the orchestrator asks again on the state it folded, and its answer is the one
that holds. Both refuse with the same RunRejected, so a refusal reads the same whichever of the
two gave it. A resume is checked once, by whoever asks for it: the gateway before it sends
ResumeRun, the orchestrator's credit watch before it resumes a run that paused for credits.
"""

from __future__ import annotations

from contracts.credits import required_for
from contracts.events import RunRejected
from contracts.stages import PRICES


def refuse_start(*, active_run_id: str | None, estimate: int, balance: int) -> RunRejected | None:
    """The refusal of a start, or None when it may go ahead."""
    if active_run_id is not None:
        return RunRejected(
            code="active_run",
            active_run_id=active_run_id,
            reason=f"run {active_run_id} is already active for this site",
        )
    required = required_for(estimate)
    if balance < required:
        return RunRejected(
            code="insufficient_credits",
            reason=(
                f"insufficient credits: the start check covers {estimate} credits, starting "
                f"needs {required} (1.2 x estimate), the balance is {balance}"
            ),
            estimate=estimate,
            balance=balance,
            required=required,
        )
    return None


def refuse_resume(*, stage: int, balance: int) -> tuple[str, int] | None:
    """(reason, credits needed) when the balance cannot pay the next item of `stage`: resuming
    would only pause the run again at once."""
    # The most the next item can cost: a price per several items charges one item in `per`.
    needed = PRICES[stage].credits if stage in PRICES else 0
    if balance >= needed:
        return None
    reason = (
        f"insufficient credits: the next item of stage {stage} costs {needed} credits, "
        f"the balance is {balance}; add credits, then resume"
    )
    return reason, needed
