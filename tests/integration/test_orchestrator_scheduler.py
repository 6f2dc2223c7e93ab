"""The scheduler against the real database and broker: two orchestrator replicas and a
restart still start exactly one run per due slot."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from contracts import commands as cmd
from contracts import events as ev
from contracts.codec import decode
from contracts.db import tables as t
from contracts.schedule import scheduled_run_id
from tests.support.kafka import end_offsets, read_until
from tests.support.orchestrator import ORCHESTRATOR
from tests.support.parallel import SHARED_ROWS

pytestmark = SHARED_ROWS

SCHEDULING = {
    "TICK_SECONDS": "0.2",
    "SCHEDULER_ENABLED": "true",
    "SCHEDULER_INTERVAL_SECONDS": "1",
    # Wide enough for the process start-up; narrow so that other sites' slots in the shared
    # database are left to their own schedulers.
    "SCHEDULER_LOOKBACK_SECONDS": "300",
}


def due_site(db: sa.Engine, now: datetime) -> int:
    """An account and a site whose daily slot is this very minute (UTC)."""
    name = f"sched-{uuid.uuid4().hex[:8]}"
    with db.begin() as conn:
        account_id = conn.execute(
            sa.insert(t.accounts).values(name=name, credit_balance=1000).returning(t.accounts.c.id)
        ).scalar_one()
        site_id = conn.execute(
            sa.insert(t.sites)
            .values(account_id=account_id, name=name, timezone="UTC")
            .returning(t.sites.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(t.automation_configs).values(
                site_id=site_id,
                is_enabled=True,
                frequency="daily",
                scheduled_time=f"{now:%H:%M}",
                stage_2_batch_size=3,
                ai_mode="economy_when_scheduled",
            )
        )
    return site_id


def disable(db: sa.Engine, site_id: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.update(t.automation_configs)
            .where(t.automation_configs.c.site_id == site_id)
            .values(is_enabled=False)
        )


async def starts_for(bootstrap: str, start: dict, site_id: int, seconds: float) -> list:
    records = await read_until(bootstrap, start, lambda rs: False, timeout=seconds)
    messages = [decode(r.value) for r in records]
    return [m for m in messages if m.site_id == site_id and isinstance(m.data, cmd.StartRun)]


async def test_two_replicas_start_exactly_one_run_per_due_slot(
    kafka_bootstrap, topics, services, db
):
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    site_id = due_site(db, slot)
    # Every pass of every replica sees the same moment, just past the slot, whenever it runs.
    scheduling = {**SCHEDULING, "SCHEDULER_CLOCK": (slot + timedelta(seconds=10)).isoformat()}
    commands_start = await end_offsets(kafka_bootstrap, topics.run_commands)
    events_start = await end_offsets(kafka_bootstrap, topics.run_events)
    try:
        replicas = [
            await asyncio.to_thread(services.start, name, ORCHESTRATOR, env=scheduling)
            for name in ("orchestrator-sched-a", "orchestrator-sched-b")
        ]
        starts = await starts_for(kafka_bootstrap, commands_start, site_id, seconds=6)
        assert len(starts) == 1
        start = starts[0].data
        assert start.run_id == scheduled_run_id(site_id, slot)
        assert (start.trigger, start.slot_at, start.balance) == ("scheduled", slot, 1000)
        assert start.config.batch_size(2) == 3
        # The site's AI mode travels with the run: economy, since the run is scheduled.
        assert start.config.ai_mode == "economy_when_scheduled"
        assert start.config.economy(start.trigger)

        with db.connect() as conn:
            slots = conn.execute(
                sa.select(t.schedule_slots).where(t.schedule_slots.c.site_id == site_id)
            ).all()
            config = conn.execute(
                sa.select(t.automation_configs).where(t.automation_configs.c.site_id == site_id)
            ).one()
        assert [(s.slot_at, s.run_id) for s in slots] == [(slot, start.run_id)]
        assert config.last_run_at is not None
        assert config.next_run_at == slot + timedelta(days=1)

        events = await read_until(
            kafka_bootstrap,
            events_start,
            lambda rs: any(decode(r.value).run_id == start.run_id for r in rs),
        )
        [started] = [decode(r.value) for r in events if decode(r.value).run_id == start.run_id]
        assert isinstance(started.data, ev.RunStarted) and started.data.trigger == "scheduled"
        assert started.data.config.ai_mode == "economy_when_scheduled"

        for replica in replicas:
            await asyncio.to_thread(replica.stop)
        await asyncio.to_thread(
            services.start, "orchestrator-sched-c", ORCHESTRATOR, env=scheduling
        )
        assert len(await starts_for(kafka_bootstrap, commands_start, site_id, seconds=4)) == 1
    finally:
        disable(db, site_id)
