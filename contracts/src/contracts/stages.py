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


@dataclass(frozen=True, slots=True)
class Price:
    """`credits` for every `per` items the stage picked, charged on the 1st, (per+1)th... of
    them: an item's place in the stage never changes, so the sum is the same whatever the
    batches."""

    credits: int
    per: int = 1

    def due(self, place_in_stage: int) -> int:
        return self.credits if place_in_stage % self.per == 0 else 0


PRICES: dict[int, Price] = {
    1: Price(1, per=KEYWORDS_PER_CREDIT),
    2: Price(CREDITS_PER_CLUSTER),
    3: Price(0),
    4: Price(CREDITS_PER_CONTENT),
    5: Price(CREDITS_PER_PROMPT_SET),
    6: Price(CREDITS_PER_IMAGE),
    7: Price(0),
}
