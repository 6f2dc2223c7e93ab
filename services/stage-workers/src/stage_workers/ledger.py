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


_a, _ledger = t.accounts.c, t.credit_ledger.c
# Built once with bound parameters (building a statement costs more CPU than running it).
_CHARGED = sa.select(_ledger.id).where(_ledger.idempotency_key == sa.bindparam("key"))
_DEBIT = (
    sa.update(t.accounts)
    .where(_a.id == sa.bindparam("account"), _a.credit_balance >= sa.bindparam("amount"))
    .values(credit_balance=_a.credit_balance - sa.bindparam("amount"))
    .returning(_a.credit_balance)
)
_RECORD = insert(t.credit_ledger)


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
    if conn.execute(_CHARGED, {"key": key}).first():
        return 0
    balance = conn.execute(_DEBIT, {"account": account_id, "amount": amount}).scalar_one_or_none()
    if balance is None:
        raise InsufficientCredits(f"account {account_id} cannot pay {amount} credits")
    conn.execute(
        _RECORD,
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
