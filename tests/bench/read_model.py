"""Figure 4: from a stage command sent to its item visible in the run read model, during one
site's run at zero AI latency (orchestrator, one stage-worker process and the log-sink).

Method. Three clocks, all this machine's wall clock:
- sent: the Kafka timestamp (producer create time) of the first ProcessBatch record on the stage
  topics that names the item, read back from the stage topics after the run;
- on the stream: the Kafka timestamp of the item's StageItemProcessed (or StageItemFailed) record
  on the run-events topic;
- visible: the first moment a reader polling the read model (automation_run_stages, the table
  the gateway answers current_processing from) every 10 ms saw the stage's processed + failed
  count reach the item's place in the stream. The log-sink folds the same partition in the same
  order, so the count reaches n exactly when the n-th settled item of that stage is in the row.
An item's latency is visible - sent; the two parts are sent -> on the stream (worker, outbox
relay) and on the stream -> visible (log-sink fold and write). The poll interval bounds the error
of "visible" (+10 ms at most, plus the query's own time).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from contracts import commands as cmd
from contracts import events as ev
from contracts.codec import decode
from contracts.db.tables import automation_run_stages as stages_table
from contracts.values import RunConfig
from tests.bench.harness import Deployment, Seen, Stack, deployment, percentile, topic_partitions
from tests.bench.harness import watch as watch_runs
from tests.support.kafka import end_offsets, read_until
from tests.support.wait import wait_until_async

POLL_SECONDS = 0.01
SETTLED = (ev.StageItemProcessed, ev.StageItemFailed)


@dataclass
class ReadModelPoller:
    """Polls one run's stage rows in a thread; notes when each stage's settled count first
    reached each value."""

    engine: sa.Engine
    run_id: str
    first_seen: dict[tuple[int, int], float] = field(default_factory=dict)
    settled: dict[int, int] = field(default_factory=dict)

    def __enter__(self) -> ReadModelPoller:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="read-model-poller")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        c = stages_table.c
        query = sa.select(c.stage, c.processed_items + c.failed_items).where(
            c.run_id == self.run_id
        )
        engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            while not self._stop.wait(POLL_SECONDS):
                rows = conn.execute(query).all()
                now = time.time()
                for stage, count in rows:
                    for n in range(self.settled.get(stage, 0) + 1, count + 1):
                        self.first_seen[(stage, n)] = now
                    self.settled[stage] = max(count, self.settled.get(stage, 0))


@dataclass(frozen=True)
class Latencies:
    total: list[float]
    to_stream: list[float]
    to_read_model: list[float]


async def command_to_read_model(stack: Stack, keywords: int) -> Latencies:
    async with deployment(stack, "log-sink", "orchestrator", "workers") as deployed:
        [site] = deployed.new_sites(1, keywords)
        async with watch_runs(deployed) as watcher:
            [run_id], _ = await deployed.start_runs([site], RunConfig())
            with ReadModelPoller(stack.engine, run_id) as poller:
                [state] = await watcher.finished([run_id])
                final = {s.number: s.processed_count + len(s.failed) for s in state.stages}

                async def all_visible() -> bool:
                    return all(poller.settled.get(n, 0) >= k for n, k in final.items() if k)

                await wait_until_async(all_visible, timeout=120, what="read model caught up")
            sent = await first_dispatch(deployed)
            return match(watcher.events[run_id], sent, poller.first_seen)


async def first_dispatch(deployed: Deployment) -> dict[tuple[int, int], float]:
    """(stage, item id) -> timestamp of the first ProcessBatch record that named the item."""
    topics = deployed.topics
    start: dict = {}
    for stage in range(1, 7):
        start.update({tp: 0 for tp in topic_partitions(topics, topics.stage(stage))})
    bootstrap = deployed.stack.bootstrap
    ends = {}
    for stage in range(1, 7):
        ends.update(await end_offsets(bootstrap, topics.stage(stage)))
    total = sum(ends.values())
    records = await read_until(bootstrap, start, lambda found: len(found) >= total, timeout=60)
    sent: dict[tuple[int, int], float] = {}
    for record in records:
        batch = decode(record.value).data
        if isinstance(batch, cmd.ProcessBatch):
            for item_id in batch.item_ids:
                key = (batch.stage, item_id)
                sent[key] = min(sent.get(key, float("inf")), record.timestamp / 1000)
    return sent


def match(
    events: list[Seen], sent: dict[tuple[int, int], float], visible: dict[tuple[int, int], float]
) -> Latencies:
    settled: dict[int, set[int]] = {}
    result = Latencies([], [], [])
    for seen in events:
        data = seen.message.data
        if not isinstance(data, SETTLED) or data.item.id in settled.setdefault(data.stage, set()):
            continue
        settled[data.stage].add(data.item.id)
        dispatched = sent[(data.stage, data.item.id)]
        shown = visible[(data.stage, len(settled[data.stage]))]
        result.total.append(shown - dispatched)
        result.to_stream.append(seen.timestamp - dispatched)
        result.to_read_model.append(shown - seen.timestamp)
    return result


def table(result: Latencies) -> list[str]:
    def ms(values: list[float], q: float) -> str:
        return f"{1000 * percentile(values, q):.0f}"

    rows = [
        ("command sent → item visible in the read model", result.total),
        ("command sent → item event on the run-events topic", result.to_stream),
        ("item event on the topic → visible in the read model", result.to_read_model),
    ]
    lines = ["| interval | items | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    return lines + [
        f"| {name} | {len(values)} | {ms(values, 50)} | {ms(values, 99)} | {ms(values, 100)} |"
        for name, values in rows
    ]
