"""What the orchestrator's handlers work through: the state they keep, where their messages go,
the database reads of the scheduler and the credit watch, and the clock. bootstrap.py wires the
real adapters; a test passes fakes and needs no broker or database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope, utcnow
from contracts.state import RunState
from contracts.topics import Topics
from orchestrator.credit_watch import Funds
from orchestrator.decide import Limits
from orchestrator.scheduler import Publish
from orchestrator.sites import Sites


class Outputs(Protocol):
    """Where decided messages go. A send hands the message over and returns; `flush` waits
    until Kafka has taken every one."""

    async def send(self, topic: str, key: bytes, message: Envelope) -> None: ...

    async def dead_letter(self, letter: DeadLetter) -> None: ...

    def send_from_thread(self, topic: str, message: Envelope) -> None:
        """From a thread other than the loop's (the scheduler's database work): send, and
        return once Kafka has taken it; raise if it did not."""
        ...

    def handing_over(self) -> AbstractContextManager[None]:
        """Around changing the state and sending what the change decided: while it is open,
        the state holds messages not yet sent (and may not be snapshot)."""
        ...

    def settled(self) -> bool:
        """No hand-over open, and Kafka acknowledged every send."""
        ...

    async def flush(self) -> None: ...


class HandOvers:
    """The count of hand-overs open, for an Outputs (`handing_over`)."""

    def __init__(self) -> None:
        self.open = 0

    @contextmanager
    def handing_over(self) -> Iterator[None]:
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1


ReadFunds = Callable[[list[RunState]], dict[str, Funds]]
"""Balances and settings of the accounts and sites of these runs (blocking: run in a thread)."""

RunScheduler = Callable[[datetime, Publish], list[str]]
"""One scheduler pass at this moment: claims due slots and publishes their starts (blocking)."""


@dataclass
class Ports:
    topics: Topics
    group_id: str
    limits: Limits
    sites: Sites
    outputs: Outputs
    read_funds: ReadFunds
    run_scheduler: RunScheduler
    clock: Callable[[], datetime] = field(default=utcnow)
