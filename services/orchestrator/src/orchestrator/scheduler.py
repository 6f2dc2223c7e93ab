"""The scheduler's database side: find enabled sites whose slot has come, claim each slot once
across every orchestrator replica (the schedule_slots primary key), publish its StartRun."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine, Row

from contracts import ids
from contracts.commands import StartRun
from contracts.credits import estimate
from contracts.db import tables as t
from contracts.db.pending import pending_work
from contracts.envelope import Envelope, new_message
from contracts.schedule import due_slot, next_slot, scheduled_run_id
from contracts.values import RunConfig

SOURCE = "/automation/orchestrator/scheduler"

log = logging.getLogger(__name__)

Publish = Callable[[Envelope], None]
"""Sends a run command and returns once Kafka acknowledged it; raises if it could not."""


def enabled_sites(conn: Connection) -> list[Row]:
    cfg, site = t.automation_configs, t.sites
    query = (
        sa.select(cfg, site.c.account_id, site.c.timezone)
        .join(site, site.c.id == cfg.c.site_id)
        .where(cfg.c.is_enabled)
    )
    return list(conn.execute(query))


def start_message(row: Row, slot: datetime, balance: int, credits: int, now: datetime) -> Envelope:
    run_id = scheduled_run_id(row.site_id, slot)
    start = StartRun(
        run_id=run_id,
        trigger="scheduled",
        requested_by="scheduler",
        config=RunConfig.from_config(row._mapping),
        estimate=credits,
        balance=balance,
        slot_at=slot,
    )
    return new_message(
        start,
        source=SOURCE,
        account_id=row.account_id,
        site_id=row.site_id,
        run_id=run_id,
        message_id=ids.scheduled_start(run_id),
        time=now,
    )


def claim_and_start(engine: Engine, row: Row, slot: datetime, now: datetime, publish: Publish):
    """Claim the slot and publish its StartRun in one transaction: if the publish fails the
    claim rolls back; if we die after publishing, the next claimer publishes the same run id,
    which the orchestrator ignores. Returns the run id, or None if another claimed it."""
    run_id = scheduled_run_id(row.site_id, slot)
    with engine.begin() as conn:
        claim = (
            insert(t.schedule_slots)
            .values(site_id=row.site_id, slot_at=slot, run_id=run_id)
            .on_conflict_do_nothing()
            .returning(t.schedule_slots.c.run_id)
        )
        if conn.execute(claim).first() is None:
            return None
        balance = conn.execute(
            sa.select(t.accounts.c.credit_balance).where(t.accounts.c.id == row.account_id)
        ).scalar_one()
        # The figure the start check covers, by the site's rule (pending now, or projected).
        credits = estimate(
            pending_work(conn, row.site_id), balance, row.start_check
        ).checked_credits
        following = next_slot(now, row.frequency, row.scheduled_time, row.timezone)
        conn.execute(
            sa.update(t.automation_configs)
            .where(t.automation_configs.c.site_id == row.site_id)
            .values(last_run_at=now, next_run_at=following)
        )
        publish(start_message(row, slot, balance, credits, now))
    return run_id


def run_once(engine: Engine, now: datetime, lookback_seconds: float, publish: Publish) -> list:
    """One pass over the enabled sites; the run ids this replica started."""
    with engine.connect() as conn:
        rows = enabled_sites(conn)
    started = []
    for row in rows:
        try:
            slot = due_slot(now, row.frequency, row.scheduled_time, row.timezone, lookback_seconds)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            log.warning("site %s: cannot compute its slot: %s", row.site_id, exc)
            continue
        if slot is not None and (run_id := claim_and_start(engine, row, slot, now, publish)):
            log.info("scheduled run %s for site %s, slot %s", run_id, row.site_id, slot)
            started.append(run_id)
    return started
