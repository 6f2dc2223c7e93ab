"""The ports the handlers use, wired once per process (bootstrap.py): the database, the AI
behind its gate, the topics, the media directory and the relay to wake after a commit."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Connection, Engine

from contracts.envelope import Envelope
from contracts.topics import Topics
from stage_workers.ai.base import AIProvider
from stage_workers.bookkeeping import RunBook, SqlRunBook
from stage_workers.run_watch import HeardStops
from stage_workers.unit_of_work import UnitOfWork

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class WorkerDeps:
    engine: Engine
    ai: AIProvider  # the gated AI (stage_workers.gate.calls.GatedAI)
    topics: Topics
    media_dir: Path
    wake_relay: Callable[[], None] = lambda: None
    # Threads for the synchronous driver; None is asyncio's default pool (cores + 4 threads).
    executor: Executor | None = None
    # The run bookkeeping port over a transaction's connection.
    book: Callable[[Connection], RunBook] = SqlRunBook
    # Run stops this process's run watch heard (run id -> stopped), ahead of the table.
    stops: HeardStops = field(default_factory=HeardStops)
    # Economy runs' ports (stage_workers.economy.Economy); None for a provider without a batch
    # interface, whose economy batches are then made call by call.
    economy: Any = None

    async def unit_of_work(
        self,
        command: Envelope,
        work: Callable[Concatenate[UnitOfWork, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work(uow, *args)` in one transaction of `command` (unit_of_work.py)."""

        def in_unit(conn: Connection) -> T:
            uow = UnitOfWork(conn, command, self.book(conn), self.stops, self.topics.run_events)
            return work(uow, *args, **kwargs)

        return await self.in_transaction(in_unit)

    async def in_transaction(self, work: Callable[..., T], *args: object) -> T:
        """Run `work(conn, *args)` in one transaction, off the event loop (the database driver
        is synchronous), then wake the relay so the events stored leave at once."""

        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn, *args)

        # In the caller's context (an executor, unlike to_thread, does not copy it): the events
        # stored carry the trace context of the item's span (ADR 20).
        context = contextvars.copy_context()
        result = await asyncio.get_running_loop().run_in_executor(self.executor, context.run, run)
        self.wake_relay()
        return result
