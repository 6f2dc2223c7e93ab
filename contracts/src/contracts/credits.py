"""The credit estimate for a site's pending work, the projection of what the run will create on
the way, and the 1.2x start check.

SPEC's start check covers what is pending now. A site may ask for the stricter check against the
projected total (what earlier stages will create on the way), since the cascade costs far more
than the keywords alone; either way the estimate says at which stage the balance would run out.

How many clusters stage 1 makes cannot be known before it runs: it asks the AI to group each
batch of keywords into topical clusters with no target size (the offline provider merges similar
keywords down to a threshold), so the projection is a range: at least one cluster per batch, at
most one per keyword. Its expected figure, `projected_credits`, uses the site's own clusters per
keyword so far, or a typical 1 per 5 keywords before the site has clusters. After stage 1 the
counts are what the stages ask the AI for: 3 ideas per cluster, a task and an article per idea,
4 images per article. The projected start check covers the expected figure, not the top of the
range: the top assumes the AI grouped nothing, several times the usual cost; the 1.2x buffer is
for the usual spread, and a run that cannot pay for its next item pauses itself anyway."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from contracts.stages import (
    CREDITS_PER_CLUSTER,
    CREDITS_PER_CONTENT,
    CREDITS_PER_IMAGE,
    CREDITS_PER_PROMPT_SET,
    IMAGES_PER_CONTENT,
    KEYWORDS_PER_CREDIT,
)
from contracts.values import DEFAULT_BATCH_SIZES

START_BUFFER = 1.2
StartCheck = Literal["pending", "projected"]
START_CHECKS: tuple[StartCheck, ...] = ("pending", "projected")
Projection = Literal["exact", "range"]
IDEAS_PER_CLUSTER = 3  # what stage 2 asks the AI for
TYPICAL_KEYWORDS_PER_CLUSTER = 5  # the expected grouping before a site has clusters of its own


class PendingWork(BaseModel):
    """What each stage would pick right now, and how stage 1 has grouped the site's keywords so
    far: the projection's evidence."""

    model_config = ConfigDict(frozen=True)

    keywords: int = Field(0, ge=0, description="Stage 1: keywords new, unclustered, enabled.")
    clusters: int = Field(0, ge=0, description="Stage 2: clusters new with no ideas.")
    ideas: int = Field(0, ge=0, description="Stage 3: ideas new.")
    tasks: int = Field(0, ge=0, description="Stage 4: tasks queued with no content.")
    content_without_images: int = Field(0, ge=0, description="Stage 5: draft content, no images.")
    pending_images: int = Field(0, ge=0, description="Stage 6: images pending.")
    keywords_per_batch: int = Field(
        DEFAULT_BATCH_SIZES[1],
        ge=1,
        description="Stage 1's batch size: one AI call groups each batch into clusters.",
    )
    clustered_keywords: int = Field(
        0, ge=0, description="The site's keywords stage 1 has put in a cluster so far."
    )
    clusters_made: int = Field(0, ge=0, description="The clusters those keywords are in.")


class Estimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    estimated_credits: int = Field(description="Credits the pending work costs (SPEC formula).")
    projected_credits: int = Field(
        description="Also counting what earlier stages will create during the run: the expected "
        "figure, with stage 1 making clusters at the site's own clusters per keyword so far "
        f"(1 per {TYPICAL_KEYWORDS_PER_CLUSTER} keywords before the site has clusters)."
    )
    projected_credits_min: int = Field(
        description="The projection's low end: stage 1 makes one cluster per batch of keywords."
    )
    projected_credits_max: int = Field(
        description="The projection's high end: stage 1 makes one cluster per keyword."
    )
    projection: Projection = Field(
        description="`exact`: no keywords for stage 1 to group (or batches of one keyword), so "
        "projected_credits_min = projected_credits = projected_credits_max. `range`: how stage "
        "1 groups keywords is up to the AI; projected_credits is the expected figure inside it."
    )
    balance: int
    start_check: StartCheck = Field(
        description="The site's start rule: 1.2x the work pending now (SPEC's rule) or 1.2x "
        "the projected total (its expected figure, projected_credits).",
    )
    checked_credits: int = Field(
        description="The figure the start check covers: estimated_credits or projected_credits."
    )
    required: int = Field(description="Credits needed to start: ceil(1.2 x checked_credits).")
    sufficient: bool = Field(description="balance >= required")
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


class ClusterCount(NamedTuple):
    least: int
    expected: int
    most: int


def projected_clusters(p: PendingWork) -> ClusterCount:
    """Clusters stage 1 will make of the pending keywords: each batch makes at least one and
    each keyword is in exactly one; expected at the site's clusters per keyword so far (else the
    typical yield), rounded up and kept inside those bounds."""
    least = -(-p.keywords // p.keywords_per_batch)
    if p.clustered_keywords:
        expected = -(-p.keywords * p.clusters_made // p.clustered_keywords)
    else:
        expected = -(-p.keywords // TYPICAL_KEYWORDS_PER_CLUSTER)
    return ClusterCount(least, min(max(expected, least), p.keywords), p.keywords)


def projected_by_stage(p: PendingWork, new_clusters: int | None = None) -> dict[int, float]:
    """Follow the work down the pipeline, stage by stage: keywords become clusters (the expected
    count unless `new_clusters` says), clusters ideas, ideas tasks, tasks content, content
    prompts and images. Stage 3 (ideas to tasks) is free."""
    if new_clusters is None:
        new_clusters = projected_clusters(p).expected
    clusters = p.clusters + new_clusters
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


def estimate_projected(p: PendingWork, new_clusters: int | None = None) -> int:
    return math.ceil(sum(projected_by_stage(p, new_clusters).values()))


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
    clusters = projected_clusters(p)
    checked = projected if start_check == "projected" else now
    needed = required_for(checked)
    return Estimate(
        estimated_credits=now,
        projected_credits=projected,
        projected_credits_min=estimate_projected(p, clusters.least),
        projected_credits_max=estimate_projected(p, clusters.most),
        projection="exact" if clusters.least == clusters.most else "range",
        balance=balance,
        start_check=start_check,
        checked_credits=checked,
        required=needed,
        sufficient=balance >= needed,
        runs_out_at_stage=runs_out_at_stage(p, balance),
    )
