"""What handlers need, wired once per process: the database, the AI behind its gate, topics,
the relay's bell."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from sqlalchemy.engine import Connection, Engine

from contracts.envelope import Envelope, Payload, new_message
from contracts.topics import Topics
from stage_workers.ai.base import AIProvider
from stage_workers.bookkeeping import RunBook, SqlRunBook
from stage_workers.outbox import enqueue
from stage_workers.run_watch import HeardStops

SOURCE = "/automation/stage-workers"
T = TypeVar("T")


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
    # The newest word on runs whose events this process's run watch reads (run id -> stopped),
    # ahead of the table: a pause must not wait for a database thread to be free.
    stops: HeardStops = field(default_factory=HeardStops)

    def run_stopped(self, run_id: str, recorded: bool) -> bool:
        """`recorded` (the table's word) unless this process heard newer."""
        return self.stops.get(run_id, recorded)

    async def in_transaction(self, work: Callable[..., T], *args: object) -> T:
        """Run `work(conn, *args)` in one transaction, off the event loop (the database driver
        is synchronous), then ring the relay so enqueued events leave at once."""

        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn, *args)

        # In the caller's context (an executor, unlike to_thread, does not copy it): the events
        # enqueued carry the trace context of the item's span (ADR 20).
        context = contextvars.copy_context()
        result = await asyncio.get_running_loop().run_in_executor(self.executor, context.run, run)
        self.wake_relay()
        return result

    def emit(
        self, conn: Connection, command: Envelope, payload: Payload, message_id: UUID | None
    ) -> bool:
        """Enqueue an event caused by `command` on run events; False if it was already there."""
        event = new_message(
            payload,
            source=SOURCE,
            account_id=command.account_id,
            site_id=command.site_id,
            run_id=command.run_id,
            caused_by=command,
            message_id=message_id,
        )
        return enqueue(conn, self.topics.run_events, event)
