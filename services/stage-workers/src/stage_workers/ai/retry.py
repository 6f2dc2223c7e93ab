"""What the gate raises when an item cannot be done (stage_workers.gate.calls)."""

from __future__ import annotations


class PoisonedItem(Exception):
    """The AI could not do this item: the provider refused it, its answer was unusable, or it
    failed every attempt while the provider otherwise answered."""

    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error = error
        self.attempts = attempts
