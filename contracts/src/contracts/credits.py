"""The credit estimate for a site's pending work, and the 1.2x start check."""

from __future__ import annotations

import math

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
    required: int = Field(description="Credits needed to start: ceil(1.2 x estimate).")
    sufficient: bool


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


def estimate_projected(p: PendingWork) -> int:
    """Follow the work down the pipeline: keywords become clusters, clusters ideas, ideas tasks,
    tasks content, content prompts and images. Cluster and idea yields are typical figures."""
    clusters = p.clusters + math.ceil(p.keywords / KEYWORDS_PER_CLUSTER)
    tasks = p.tasks + p.ideas + clusters * IDEAS_PER_CLUSTER
    content = p.content_without_images + tasks
    return math.ceil(
        p.keywords / KEYWORDS_PER_CREDIT
        + clusters * CREDITS_PER_CLUSTER
        + tasks * CREDITS_PER_CONTENT
        + content * CREDITS_PER_PROMPT_SET
        + (content * IMAGES_PER_CONTENT + p.pending_images) * CREDITS_PER_IMAGE
    )


def required_for(estimate: int) -> int:
    return math.ceil(estimate * START_BUFFER - 1e-9)


def estimate(p: PendingWork, balance: int) -> Estimate:
    now = estimate_now(p)
    needed = required_for(now)
    return Estimate(
        estimated_credits=now,
        projected_credits=estimate_projected(p),
        balance=balance,
        required=needed,
        sufficient=balance >= needed,
    )
