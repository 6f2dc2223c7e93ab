"""How fast run state is rebuilt: decoding records and folding them, the work every service does
when it replays the event stream on start. Run by hand:

    .tools/bin/uv run python -m tests.bench.bench_fold [items]

It prints events/s and items/s for a stage of `items` items in batches of one (three events per
item: dispatched, processed, batch completed), the worst case for the fold. `FoldTime` is the
timer; tests/bench/replay.py uses it over whole runs for the replay figure.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from contracts import events as ev
from contracts.codec import decode, encode
from contracts.state import RunState, fold
from contracts.values import ItemRef
from tests.support.runs import T0, Clock, message

RUN = "run_20261122_000000_manual_bench"


def stage_stream(items: int) -> list:
    clock = Clock()
    refs = tuple(ItemRef(id=i, title=f"keyword {i}") for i in range(items))
    payloads = [ev.RunStarted(trigger="manual"), ev.StageStarted(stage=4, items=refs)]
    for ref in refs:
        batch = f"4-{ref.id + 1}"
        payloads += [
            ev.StageBatchDispatched(stage=4, batch_id=batch, item_ids=(ref.id,), lease_until=T0),
            ev.StageItemProcessed(
                stage=4, batch_id=batch, item=ref, total=items, credits=5, outputs=1
            ),
            ev.StageBatchCompleted(stage=4, batch_id=batch, processed=1, failed=0, credits=5),
        ]
    return [message(p, RUN, clock, seq=n) for n, p in enumerate(payloads)]


@dataclass
class FoldTime:
    """Decode and fold time summed over runs, each run's records decoded then folded."""

    events: int = 0
    decoding: float = 0.0
    folding: float = 0.0

    def add(self, records: list[bytes]) -> RunState:
        began = time.perf_counter()
        decoded = [decode(r) for r in records]
        self.decoding += time.perf_counter() - began
        began = time.perf_counter()
        state = fold(decoded)
        self.folding += time.perf_counter() - began
        self.events += len(records)
        return state

    @property
    def events_per_second(self) -> float:
        return self.events / (self.decoding + self.folding)


def main(items: int) -> None:
    records = [encode(m) for m in stage_stream(items)]
    timed = FoldTime()
    state = timed.add(records)
    assert state.stage(4).processed_count == items
    print(
        f"{len(records)} events ({items} items): decode {len(records) / timed.decoding:,.0f} ev/s, "
        f"fold {len(records) / timed.folding:,.0f} ev/s, "
        f"together {items / (timed.decoding + timed.folding):,.0f} items/s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
