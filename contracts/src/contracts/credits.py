"""The credit estimate for a site's pending work, and the 1.2x start check.

SPEC's start check covers what is pending now. A site may ask for the stricter check against the
projected total (what earlier stages will create on the way), since the cascade costs far more
than the keywords alone; either way the estimate says at which stage the balance would run out."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.stages import (
    CREDITS_PER_CLUSTER,
    CREDITS_PER_CONTENT,
    CREDITS_PER_IMAGE,
    CREDITS_PER_PROMPT_SET,
    IMAGES_PER_CONTENT,
    KEYWORDS_PER_CREDIT,
)

START_BUFFER = 1.2
StartCheck = Literal["pending", "projected"]
START_CHECKS: tuple[StartCheck, ...] = ("pending", "projected")
IDEAS_PER_CLUSTER = 3
KEYWORDS_PER_CLUSTER = 5


class PendingWork(BaseModel):
    """What each stage would pick right now."""

    model_config = ConfigDict(frozen=True)

    keywords: int = Field(0, ge=0, description="Stage 1: keywords new, unclustered, enabled.")
    clusters: int = Field(0, ge=0, description="Stage 2: clusters new with no ideas.")
    ideas: int = Field(0, ge=0, description="Stage 3: ideas new.")
    tasks: int = Field(0, ge=0, description="Stage 4: tasks queued with no content.")
    content_without_images: int = Field(0, ge=0, description="Stage 5: draft content, no images.")
    pending_images: int = Field(0, ge=0, description="Stage 6: images pending.")


class Estimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    estimated_credits: int = Field(description="Credits the pending work costs (SPEC formula).")
    projected_credits: int = Field(
        description="Also counting what earlier stages will create during the run."
    )
    balance: int
    start_check: StartCheck = Field(
        "pending",
        description="What the start check covers: the work pending now (SPEC's rule) or the "
        "projected total.",
    )
    checked_credits: int = Field(
        description="The figure the start check covers: estimated_credits or projected_credits."
    )
    required: int = Field(description="Credits needed to start: ceil(1.2 x checked_credits).")
    sufficient: bool
    runs_out_at_stage: int | None = Field(
        description="The stage (1-6) during which the balance would run out if the run went as "
        "projected; null when it covers the projected total."
    )


def estimate_now(p: PendingWork) -> int:
    """SPEC's formula: stage 1 keywords/5, clusters x2, tasks x5, content x2 (prompts) and
    content x8 (its ~4 images); images already prompted but not rendered cost 2 each."""
    return math.ceil(
        p.keywords / KEYWORDS_PER_CREDIT
        + p.clusters * CREDITS_PER_CLUSTER
        + p.tasks * CREDITS_PER_CONTENT
        + p.content_without_images * CREDITS_PER_PROMPT_SET
        + p.content_without_images * IMAGES_PER_CONTENT * CREDITS_PER_IMAGE
        + p.pending_images * CREDITS_PER_IMAGE
    )


def projected_by_stage(p: PendingWork) -> dict[int, float]:
    """Follow the work down the pipeline, stage by stage: keywords become clusters, clusters
    ideas, ideas tasks, tasks content, content prompts and images. Cluster and idea yields are
    typical figures. Stage 3 (ideas to tasks) is free."""
    clusters = p.clusters + math.ceil(p.keywords / KEYWORDS_PER_CLUSTER)
    tasks = p.tasks + p.ideas + clusters * IDEAS_PER_CLUSTER
    content = p.content_without_images + tasks
    return {
        1: p.keywords / KEYWORDS_PER_CREDIT,
        2: clusters * CREDITS_PER_CLUSTER,
        3: 0,
        4: tasks * CREDITS_PER_CONTENT,
        5: content * CREDITS_PER_PROMPT_SET,
        6: (content * IMAGES_PER_CONTENT + p.pending_images) * CREDITS_PER_IMAGE,
    }


def estimate_projected(p: PendingWork) -> int:
    return math.ceil(sum(projected_by_stage(p).values()))


def runs_out_at_stage(p: PendingWork, balance: int) -> int | None:
    """The first stage whose projected spending, added to the stages before it, passes
    `balance`; None when the balance covers the whole projection."""
    spent = 0.0
    for stage, credits in projected_by_stage(p).items():
        spent += credits
        if math.ceil(spent - 1e-9) > balance:
            return stage
    return None


def required_for(estimate: int) -> int:
    return math.ceil(estimate * START_BUFFER - 1e-9)


def estimate(p: PendingWork, balance: int, start_check: StartCheck = "pending") -> Estimate:
    now, projected = estimate_now(p), estimate_projected(p)
    checked = projected if start_check == "projected" else now
    needed = required_for(checked)
    return Estimate(
        estimated_credits=now,
        projected_credits=projected,
        balance=balance,
        start_check=start_check,
        checked_credits=checked,
        required=needed,
        sufficient=balance >= needed,
        runs_out_at_stage=runs_out_at_stage(p, balance),
    )
