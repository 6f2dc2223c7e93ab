"""Any run's event stream, for property tests: a pool of every kind of event a run can see
(over three stages and five items) and hypothesis strategies that draw streams from it."""

from __future__ import annotations

from hypothesis import strategies as st

from contracts import commands as cmd
from contracts import events as ev
from contracts.values import ItemRef
from tests.support.runs import T0, Clock, message

RUN = "run_20261102_090000_manual_prop"
ITEM_IDS = range(1, 6)


def event_pool(stage_count: int) -> list:
    """Every kind of event a run can see, over a few stages and items."""
    items = tuple(ItemRef(id=i, title=f"item {i}") for i in ITEM_IDS)
    pool = [
        ev.RunStarted(trigger="manual"),
        ev.RunRejected(reason="busy", code="active_run"),
        ev.RunPaused(),
        ev.RunPaused(reason="insufficient_credits"),
        ev.RunResumed(),
        ev.RunResumed(),
        ev.RunCancelled(),
        ev.RunCompleted(credits_used=3),
        ev.RunFailed(error="boom"),
        ev.CommandRejected(command="x", reason="y"),
        cmd.PauseRun(run_id=RUN),
    ]
    for stage in range(1, stage_count + 1):
        pool.append(ev.StageStarted(stage=stage, items=items))
        for attempt in (1, 2):
            pool.append(
                ev.StageBatchDispatched(
                    stage=stage, batch_id="b1", item_ids=(1, 2), attempt=attempt, lease_until=T0
                )
            )
        pool.append(ev.StageBatchCompleted(stage=stage, batch_id="b1", processed=2, failed=0))
        for item in items:
            pool.append(
                ev.StageItemProcessed(
                    stage=stage, batch_id="b1", item=item, total=5, credits=item.id % 3, outputs=1
                )
            )
            pool.append(ev.StageItemFailed(stage=stage, batch_id="b1", item=item, error="e"))
        pool.append(ev.StageCompleted(stage=stage, items_in=5, items_out=5))
        pool.append(ev.StageFailed(stage=stage, error="all failed"))
    clock = Clock()
    return [message(p, RUN, clock, seq=n) for n, p in enumerate(pool)]


POOL = event_pool(stage_count=3)
RUN_LEVEL = POOL[:11]
# Run-level events are few in the pool but carry the subtle transitions (pause <-> resume), so
# half of the draws come from them.
any_event = st.one_of(st.sampled_from(RUN_LEVEL), st.sampled_from(POOL))
streams = st.lists(any_event, max_size=60).map(lambda picked: [POOL[0], *picked])
