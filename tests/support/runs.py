"""Builders for run event streams: a clock the tests control, envelopes on it, a whole run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from contracts import events as ev
from contracts.envelope import Envelope, Payload, deterministic_id, new_message
from contracts.values import ItemRef

ACCOUNT, SITE = 7, 42
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def message(payload, run_id: str, clock: Clock, *, seq: int) -> Envelope:
    return envelope(payload, run_id, clock.tick(), message_id=deterministic_id(run_id, seq))


def envelope(
    payload: Payload,
    run_id: str | None,
    time: datetime,
    *,
    account_id: int = ACCOUNT,
    site_id: int = SITE,
    message_id: UUID | None = None,
) -> Envelope:
    """A message of the test site, as a service would send it, at a time the test chose."""
    return new_message(
        payload,
        source="/tests",
        account_id=account_id,
        site_id=site_id,
        run_id=run_id,
        message_id=message_id,
        time=time,
    )


def complete_run(run_id: str = "run_20261102_090000_manual_t1", items_per_stage: int = 3):
    """A whole run: every stage picks, dispatches one batch, processes each item, completes."""
    clock = Clock()
    payloads = [ev.RunStarted(trigger="manual", estimate=10, balance=100)]
    for stage in range(1, 8):
        items = tuple(
            ItemRef(id=stage * 100 + i, title=f"s{stage} item {i}") for i in range(items_per_stage)
        )
        payloads.append(ev.StageStarted(stage=stage, items=items))
        batch = f"{stage}-1"
        payloads.append(
            ev.StageBatchDispatched(
                stage=stage,
                batch_id=batch,
                item_ids=tuple(i.id for i in items),
                lease_until=T0 + timedelta(hours=1),
            )
        )
        for item in items:
            payloads.append(
                ev.StageItemProcessed(
                    stage=stage, batch_id=batch, item=item, total=len(items), credits=2, outputs=1
                )
            )
        payloads.append(
            ev.StageBatchCompleted(
                stage=stage, batch_id=batch, processed=len(items), failed=0, credits=2 * len(items)
            )
        )
        payloads.append(
            ev.StageCompleted(
                stage=stage, items_in=len(items), items_out=len(items), credits=2 * len(items)
            )
        )
    payloads.append(ev.RunCompleted(credits_used=2 * items_per_stage * 7))
    return [message(p, run_id, clock, seq=n) for n, p in enumerate(payloads)]
