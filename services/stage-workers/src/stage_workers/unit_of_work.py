"""One transaction of a stage command, with the ports its effects go through.

Every effect of a command is written through its `UnitOfWork`: the stage's own rows (on `conn`),
the credit charge (`charge`), the events (`emit`, into the outbox), the AI calls
(`record_calls`) and the run bookkeeping (`book`: what was picked, what became of each item,
that the command was handled). They commit together or not at all, so a redelivered command
finds either all of it or none of it. `run_stopped` is the one answer to "may the run go on?".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import Envelope, Payload, new_message
from contracts.values import ItemRef
from stage_workers import metrics
from stage_workers.bookkeeping import RunBook
from stage_workers.gate.calls import CallRecord
from stage_workers.ledger import charge
from stage_workers.outbox import enqueue
from stage_workers.run_watch import HeardStops

SOURCE = "/automation/stage-workers"
# Built once: building a statement costs SQLAlchemy more CPU than running it, and this runs
# with every item.
_RECORD_CALLS = t.ai_calls.insert()


@dataclass(frozen=True)
class UnitOfWork:
    conn: Connection
    command: Envelope  # the stage command whose work this is
    book: RunBook
    stops: HeardStops  # what this process's run watch heard
    run_events: str  # the topic the events go to

    def run_stopped(self) -> bool:
        """Whether the run is paused, cancelled or over: what this process's run watch heard
        last, else the workers' table (`worker_run_status`), which every process's watch
        writes. The watch hears a stop before the table has it: a pause must not wait for a
        database thread."""
        heard = self.stops.get(self.command.run_id)
        return self.book.is_stopped(self.command.run_id) if heard is None else heard

    def emit(self, payload: Payload, message_id: UUID | None) -> bool:
        """Store an event caused by the command for the run-events topic (the outbox relay
        publishes it after the commit); False if it was stored before."""
        event = new_message(
            payload,
            source=SOURCE,
            account_id=self.command.account_id,
            site_id=self.command.site_id,
            run_id=self.command.run_id,
            caused_by=self.command,
            message_id=message_id,
        )
        return enqueue(self.conn, self.run_events, event)

    def charge(self, item_id: int, amount: int) -> int:
        """Charge the account for one item of the command's stage; returns what was charged
        now (0 if charged before). Raises InsufficientCredits: the transaction must roll back."""
        command = self.command
        return charge(
            self.conn,
            account_id=command.account_id,
            site_id=command.site_id,
            run_id=command.run_id,
            stage=command.data.stage,
            item_id=item_id,
            amount=amount,
        )

    def record_calls(self, refs: Sequence[ItemRef], records: Sequence[CallRecord]) -> None:
        """Every AI call made for these items: what it used, how long it took, how it ended,
        and what it cost."""
        if not records:
            return
        command, batch = self.command, self.command.data
        self.conn.execute(
            _RECORD_CALLS,
            [
                {
                    "account_id": command.account_id,
                    "site_id": command.site_id,
                    "run_id": batch.run_id,
                    "stage": batch.stage,
                    "batch_id": batch.batch_id,
                    "item_id": refs[0].id if len(refs) == 1 else None,
                    "items": len(refs),
                    "provider": r.provider,
                    "function": r.function,
                    "model_requested": r.model_requested,
                    "model_answered": r.usage.model if r.usage else None,
                    "input_tokens": r.usage.input_tokens if r.usage else 0,
                    "output_tokens": r.usage.output_tokens if r.usage else 0,
                    "cached_tokens": r.usage.cached_tokens if r.usage else 0,
                    "images": r.usage.images if r.usage else 0,
                    "image_size": r.usage.image_size if r.usage else None,
                    "latency_ms": r.latency_ms,
                    "waited_ms": r.waited_ms,
                    "outcome": r.outcome,
                    "attempt": r.attempt,
                    "error": r.error,
                    "cost_usd": r.cost_usd,
                    "price_version": r.price_version,
                }
                for r in records
            ],
        )
        metrics.count_calls(records)
