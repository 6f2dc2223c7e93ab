"""What a run should have cost, worked out independently of the workers: the tests' oracle
for SPEC's credit table."""

from __future__ import annotations

from contracts.stages import (
    CREDITS_PER_CLUSTER,
    CREDITS_PER_CONTENT,
    CREDITS_PER_IMAGE,
    CREDITS_PER_PROMPT_SET,
    KEYWORDS_PER_CREDIT,
)


def stage_charge(stage: int, items: int) -> int:
    """Credits a stage costs for `items` items. Stage 1 charges 1 per 5 keywords the stage
    picked, rounded up once per stage, whatever the batch size: 3 keywords cost 1."""
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
