"""What became of each item of a batch, summed into the StageBatchCompleted figures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["processed", "failed", "skipped", "halted"]


Halt = Literal["insufficient_credits", "ai_provider_unavailable"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    credits: int = 0
    outputs: int = 0
    halt: Halt = "insufficient_credits"  # why, when the kind is "halted"
    detail: str | None = None


FAILED = Outcome("failed")
SKIPPED = Outcome("skipped")
HALTED = Outcome("halted")


@dataclass
class Tally:
    processed: int = 0
    failed: int = 0
    credits: int = 0
    halted: Halt | None = None
    halt_detail: str | None = None
    fatal: str | None = None  # an error no item can get past (FatalAIError): the run fails

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Tally:
        tally = cls()
        tally.add(*outcomes)
        return tally

    def plus(self, *outcomes: Outcome) -> Tally:
        """A copy with `outcomes` added; this one is left as it was."""
        copy = replace(self)
        copy.add(*outcomes)
        return copy

    def add(self, *outcomes: Outcome) -> None:
        for outcome in outcomes:
            if outcome.kind == "processed":
                self.processed += 1
                self.credits += outcome.credits
            elif outcome.kind == "failed":
                self.failed += 1
            elif outcome.kind == "halted" and self.halted is None:
                self.halted, self.halt_detail = outcome.halt, outcome.detail
