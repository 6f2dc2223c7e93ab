"""Figure 5: rebuilding run state from a long event stream, with 10^5 (and 10^6) events on the
run-events topic of a fresh namespace.

The events are synthetic but valid: whole completed runs built from contracts' event models,
wrapped with envelope.new_message and encoded with the codec, one run per site id spread over
the partitions, every stage 1-6 with ITEMS_PER_STAGE items in batches of one (dispatched,
processed, batch completed per item: the fold's worst case). They are produced with a batching
producer (linger, large batches). Two figures:
- fold rate: each run's records decoded and folded in this process with contracts' fold
  (bench_fold.FoldTime), summed over all runs;
- the orchestrator process started on that namespace, from spawning the process to its readiness
  (automation_service_ready 1 on its metrics, polled every 50 ms, as contracts.probe reads it),
  first on a cold start and again after a graceful stop (a restart); with the catch-up time the
  orchestrator reports itself (orchestrator_replay_seconds, assignment to caught up).
Every run is completed, so a ready orchestrator has nothing to dispatch.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer

from contracts import events as ev
from contracts.codec import encode, kafka_headers
from contracts.envelope import Envelope, Payload, new_message, utcnow
from contracts.probe import is_ready
from contracts.values import ItemRef, make_run_id
from tests.bench.bench_fold import FoldTime
from tests.bench.harness import COMMANDS, FAST_ORCHESTRATOR, Stack, deployment
from tests.support.services import ServiceProcess, Services
from tests.support.wait import wait_until

ITEMS_PER_STAGE = 20
FIRST_SITE = 900_000_000
REPLAY_SECONDS = re.compile(r"^orchestrator_replay_seconds\s+(\S+)$", re.M)


@dataclass(frozen=True)
class Replay:
    events: int
    runs: int
    fold: FoldTime
    cold_start: float
    restart: float
    catch_up: float


def synthetic_run(number: int) -> list[Envelope]:
    run_id = make_run_id("manual", utcnow(), f"{number:x}")
    lease = utcnow() + timedelta(hours=1)
    payloads: list[Payload] = [ev.RunStarted(trigger="manual")]
    for stage in range(1, 7):
        refs = tuple(
            ItemRef(id=stage * 1000 + i, title=f"stage {stage} item {i}")
            for i in range(ITEMS_PER_STAGE)
        )
        payloads.append(ev.StageStarted(stage=stage, items=refs))
        for n, ref in enumerate(refs, 1):
            batch = f"{stage}-{n}"
            payloads += [
                ev.StageBatchDispatched(
                    stage=stage, batch_id=batch, item_ids=(ref.id,), lease_until=lease
                ),
                ev.StageItemProcessed(
                    stage=stage, batch_id=batch, item=ref, total=len(refs), credits=1, outputs=1
                ),
                ev.StageBatchCompleted(stage=stage, batch_id=batch, processed=1, failed=0),
            ]
        payloads.append(ev.StageCompleted(stage=stage, items_in=len(refs), items_out=len(refs)))
    payloads.append(ev.RunCompleted(credits_used=6 * ITEMS_PER_STAGE))
    site_id = FIRST_SITE + number
    return [
        new_message(p, source="/bench/replay", account_id=1, site_id=site_id, run_id=run_id)
        for p in payloads
    ]


async def fill(bootstrap: str, topic: str, events: int) -> tuple[int, int, FoldTime]:
    """Put whole runs on the topic until at least `events` are there; fold each run as it goes.
    Returns events and runs produced, and the fold's time."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    timed, produced, runs, sends = FoldTime(), 0, 0, []
    try:
        while produced < events:
            messages = synthetic_run(runs)
            records = [encode(m) for m in messages]
            state = timed.add(records)
            assert state.status == "completed", state
            for message, record in zip(messages, records, strict=True):
                headers = kafka_headers(message)
                sends.append(await producer.send(topic, record, message.key, headers=headers))
            if len(sends) > 50_000:
                await asyncio.gather(*sends)
                sends.clear()
            produced, runs = produced + len(records), runs + 1
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return produced, runs, timed


def ready_in(services: Services, timeout: float) -> tuple[ServiceProcess, float]:
    """Start the orchestrator; seconds from spawning it to its readiness."""
    began = time.monotonic()
    process = services.start(
        "orchestrator", COMMANDS["orchestrator"], env=FAST_ORCHESTRATOR, ready=False
    )
    url = f"http://127.0.0.1:{process.metrics_port}/metrics"

    def ready() -> bool:
        if process.process.poll() is not None:
            raise RuntimeError(f"orchestrator exited: {process.tail()}")
        return is_ready(url, timeout=1)

    wait_until(ready, timeout=timeout, every=0.05, what="orchestrator ready")
    return process, time.monotonic() - began


async def replay(stack: Stack, events: int) -> Replay:
    async with deployment(stack) as deployed:
        produced, runs, timed = await fill(stack.bootstrap, deployed.topics.run_events, events)
        timeout = 600 + events / 500
        first, cold = await asyncio.to_thread(ready_in, deployed.services, timeout)
        await asyncio.to_thread(first.stop)
        second, warm = await asyncio.to_thread(ready_in, deployed.services, timeout)
        found = REPLAY_SECONDS.search(await asyncio.to_thread(second.metrics))
        catch_up = float(found.group(1)) if found else float("nan")
    return Replay(produced, runs, timed, cold, warm, catch_up)


def table(results: list[Replay]) -> list[str]:
    lines = [
        "| events on the topic | runs | decode + fold in process, events/s | orchestrator "
        "cold start → ready, s | restart → ready, s | of which catch-up, s |",
        "|---|---|---|---|---|---|",
    ]
    return lines + [
        f"| {r.events:,} | {r.runs:,} | {r.fold.events_per_second:,.0f} | {r.cold_start:.1f} | "
        f"{r.restart:.1f} | {r.catch_up:.1f} |"
        for r in results
    ]
