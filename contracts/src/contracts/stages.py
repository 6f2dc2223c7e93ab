"""The seven stages as data: names and kinds, and what each item costs."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.values import StageType


@dataclass(frozen=True, slots=True)
class StageDef:
    number: int
    name: str
    type: StageType


STAGES: dict[int, StageDef] = {
    1: StageDef(1, "Keywords → Clusters", "AI"),
    2: StageDef(2, "Clusters → Ideas", "AI"),
    3: StageDef(3, "Ideas → Tasks", "Local"),
    4: StageDef(4, "Tasks → Content", "AI"),
    5: StageDef(5, "Content → Image Prompts", "AI"),
    6: StageDef(6, "Image Prompts → Images", "AI"),
    7: StageDef(7, "Manual Review Gate", "Manual"),
}

KEYWORDS_PER_CREDIT = 5
CREDITS_PER_CLUSTER = 2
CREDITS_PER_CONTENT = 5
CREDITS_PER_PROMPT_SET = 2
CREDITS_PER_IMAGE = 2
IMAGES_PER_CONTENT = 4
