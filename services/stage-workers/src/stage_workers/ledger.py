"""Charging credits: a guarded decrement and a ledger row whose key makes a charge happen once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t


class InsufficientCredits(Exception):
    """The account cannot pay for the item; the caller's transaction must roll back."""


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
    """Charge `amount` for one item; returns what was charged now (0 if it was charged before)."""
    if amount <= 0:
        return 0
    key = charge_key(run_id, stage, item_id)
    ledger = t.credit_ledger.c
    if conn.execute(sa.select(ledger.id).where(ledger.idempotency_key == key)).first():
        return 0
    a = t.accounts.c
    balance = conn.execute(
        sa.update(t.accounts)
        .where(a.id == account_id, a.credit_balance >= amount)
        .values(credit_balance=a.credit_balance - amount)
        .returning(a.credit_balance)
    ).scalar_one_or_none()
    if balance is None:
        raise InsufficientCredits(f"account {account_id} cannot pay {amount} credits")
    conn.execute(
        insert(t.credit_ledger).values(
            account_id=account_id,
            site_id=site_id,
            run_id=run_id,
            stage=stage,
            amount=-amount,
            balance_after=balance,
            reason=f"stage {stage} item {item_id}",
            idempotency_key=key,
        )
    )
    return amount
