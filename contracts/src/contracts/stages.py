"""The seven stages as data: names, kinds, default batch sizes and what each item costs."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.values import StageType


@dataclass(frozen=True, slots=True)
class StageDef:
    number: int
    name: str
    type: StageType
    default_batch: int | None
    picks: str


STAGES: dict[int, StageDef] = {
    1: StageDef(1, "Keywords → Clusters", "AI", 20, "keywords new, no cluster, not disabled"),
    2: StageDef(2, "Clusters → Ideas", "AI", 1, "clusters new with no ideas"),
    3: StageDef(3, "Ideas → Tasks", "Local", 20, "ideas new"),
    4: StageDef(4, "Tasks → Content", "AI", 1, "tasks queued with no content"),
    5: StageDef(5, "Content → Image Prompts", "AI", 1, "content draft with no images"),
    6: StageDef(6, "Image Prompts → Images", "AI", 1, "images pending"),
    7: StageDef(7, "Manual Review Gate", "Manual", None, "content in review"),
}

KEYWORDS_PER_CREDIT = 5
CREDITS_PER_CLUSTER = 2
CREDITS_PER_CONTENT = 5
CREDITS_PER_PROMPT_SET = 2
CREDITS_PER_IMAGE = 2
IMAGES_PER_CONTENT = 4


def batch_charge(stage: int, items: int) -> int:
    """Credits a batch of `items` costs. Stage 1 charges 1 per 5 keywords, rounded up per batch,
    so a batch of 3 keywords still costs 1."""
    if items <= 0:
        return 0
    match stage:
        case 1:
            return -(-items // KEYWORDS_PER_CREDIT)
        case 2:
            return CREDITS_PER_CLUSTER * items
        case 4:
            return CREDITS_PER_CONTENT * items
        case 5:
            return CREDITS_PER_PROMPT_SET * items
        case 6:
            return CREDITS_PER_IMAGE * items
        case _:
            return 0
