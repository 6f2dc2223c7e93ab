"""The stage worker's tests' inputs: tenants with a run id, keywords to pick, the commands the
orchestrator would send a stage, and what the database holds afterwards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from api_gateway.accounts import add_credits, create_account, create_site
from contracts.commands import ProcessBatch, StartStage
from contracts.db import tables as t
from contracts.envelope import Envelope, new_message, utcnow

ESPRESSO = [
    "how to make espresso at home",
    "espresso grind size",
    "espresso shot timing",
    "espresso tamping pressure",
    "why is my espresso sour",
]
FRENCH_PRESS = [
    "french press coffee ratio",
    "how long to steep french press",
    "french press grind size",
    "how to clean a french press",
    "best french press coffee maker",
]


@dataclass
class Tenant:
    account_id: int
    site_id: int
    run_id: str


def new_tenant(db: sa.Engine, credits: int) -> Tenant:
    with db.begin() as conn:
        account_id = create_account(conn, f"workers-{uuid.uuid4().hex[:8]}")
        site_id = create_site(conn, account_id, "site")
        if credits:
            add_credits(conn, account_id, credits)
    return Tenant(account_id, site_id, f"run_test_{uuid.uuid4().hex[:10]}")


def add_keywords(db: sa.Engine, site_id: int, texts: list[str]) -> list[int]:
    with db.begin() as conn:
        return list(
            conn.execute(
                sa.insert(t.keywords)
                .values([{"site_id": site_id, "text": text} for text in texts])
                .returning(t.keywords.c.id)
            ).scalars()
        )


def scalar(db: sa.Engine, query) -> object:
    with db.connect() as conn:
        return conn.execute(query).scalar_one()


def balance(db: sa.Engine, account_id: int) -> int:
    return scalar(db, sa.select(t.accounts.c.credit_balance).where(t.accounts.c.id == account_id))


def count(db: sa.Engine, table: sa.Table, *where) -> int:
    return scalar(db, sa.select(sa.func.count()).select_from(table).where(*where))


def command(tenant: Tenant, payload) -> Envelope:
    return new_message(
        payload,
        source="/tests/workers",
        account_id=tenant.account_id,
        site_id=tenant.site_id,
        run_id=tenant.run_id,
    )


def start_stage(tenant: Tenant, stage: int) -> Envelope:
    return command(tenant, StartStage(run_id=tenant.run_id, stage=stage))


def process_batch(tenant: Tenant, stage: int, item_ids: list[int], n: int = 1) -> Envelope:
    return command(
        tenant,
        ProcessBatch(
            run_id=tenant.run_id,
            stage=stage,
            batch_id=f"{stage}-{n}",
            item_ids=tuple(item_ids),
            lease_until=utcnow() + timedelta(minutes=5),
        ),
    )


def of_type(events: list[Envelope], name: str) -> list[Envelope]:
    return [e for e in events if type(e.data).__name__ == name]
