"""What became of each item of a batch, summed into the StageBatchCompleted figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["processed", "failed", "skipped", "halted", "stopped"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    credits: int = 0
    outputs: int = 0


SKIPPED = Outcome("skipped")
HALTED = Outcome("halted")
# The run was paused, cancelled or failed: the batch ends before this item.
STOPPED = Outcome("stopped")


@dataclass
class Tally:
    processed: int = 0
    failed: int = 0
    credits: int = 0
    halted: bool = False

    def add(self, outcome: Outcome) -> None:
        if outcome.kind == "processed":
            self.processed += 1
            self.credits += outcome.credits
        elif outcome.kind == "failed":
            self.failed += 1
        elif outcome.kind == "halted":
            self.halted = True
