"""One transaction of a stage command, with the ports its effects go through.

Every effect of a command is written through its `UnitOfWork`: the stage's own rows (on `conn`),
the credit charge (`charge`, in the ledger), the events (`emit`, into the outbox), the AI calls
(`record_calls`) and the run bookkeeping (`book`: what was picked, what became of each item,
that the command was handled). They commit together or not at all, so a redelivered command
finds either all of it or none of it. `run_stopped` is the one answer to "may the run go on?".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import Envelope, Payload, new_message
from contracts.values import ItemRef
from stage_workers import metrics
from stage_workers.bookkeeping import RunBook
from stage_workers.gate.calls import CallRecord
from stage_workers.outbox import enqueue
from stage_workers.run_watch import HeardStops

SOURCE = "/automation/stage-workers"
# Built once: building a statement costs SQLAlchemy more CPU than running it, and this runs
# with every item.
_RECORD_CALLS = t.ai_calls.insert()
_accounts, _ledger = t.accounts.c, t.credit_ledger.c
_CHARGED = sa.select(_ledger.id).where(_ledger.idempotency_key == sa.bindparam("key"))
_DEBIT = (
    sa.update(t.accounts)
    .where(
        _accounts.id == sa.bindparam("account"), _accounts.credit_balance >= sa.bindparam("amount")
    )
    .values(credit_balance=_accounts.credit_balance - sa.bindparam("amount"))
    .returning(_accounts.credit_balance)
)
_RECORD_CHARGE = insert(t.credit_ledger)


class InsufficientCredits(Exception):
    """The account cannot pay for the item; the caller's transaction must roll back."""


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
        now (0 if charged before)."""
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
                    "via": r.via,
                    "saved_usd": r.saved_usd,
                }
                for r in records
            ],
        )
        metrics.count_calls(records)


def charge_key(run_id: str, stage: int, item_id: int) -> str:
    return f"{run_id}:{stage}:{item_id}"


def charge(
    conn: Connection,
    *,
    account_id: int,
    site_id: int,
    run_id: str,
    stage: int,
    item_id: int,
    amount: int,
) -> int:
    """Charge `amount` for one item: a guarded decrement, and a ledger row whose key makes the
    charge happen once. Returns what was charged now (0 if it was charged before); raises
    InsufficientCredits when the account cannot pay."""
    if amount <= 0:
        return 0
    key = charge_key(run_id, stage, item_id)
    if conn.execute(_CHARGED, {"key": key}).first():
        return 0
    balance = conn.execute(_DEBIT, {"account": account_id, "amount": amount}).scalar_one_or_none()
    if balance is None:
        raise InsufficientCredits(f"account {account_id} cannot pay {amount} credits")
    conn.execute(
        _RECORD_CHARGE,
        {
            "account_id": account_id,
            "site_id": site_id,
            "run_id": run_id,
            "stage": stage,
            "amount": -amount,
            "balance_after": balance,
            "reason": f"stage {stage} item {item_id}",
            "idempotency_key": key,
        },
    )
    return amount
