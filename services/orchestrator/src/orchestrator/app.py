"""Wiring: one aiokafka consumer over run commands and run events, the tick loop, the scheduler
loop and the metrics endpoint. Each record goes through a handler of handlers.py with its site's
state; the app keeps the state that comes back, publishes what was decided, and commits. It tells
snapshotting.py what was folded and when partitions come and go, and asks it where to start
folding. No decision is taken and no state is changed here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from prometheus_client import start_http_server

from contracts import tracing
from contracts.codec import UnreadableMessage, decode, encode, kafka_headers
from contracts.db.engines import sync_engine
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope, utcnow
from contracts.topics import Topics
from orchestrator import credit_watch, handlers, metrics, scheduler
from orchestrator.decide import Outgoing
from orchestrator.settings import Settings
from orchestrator.sites import Sites, SiteState
from orchestrator.snapshotting import Snapshotting, acknowledged

log = logging.getLogger("orchestrator")


class Rebalance(ConsumerRebalanceListener):
    def __init__(self, app: Orchestrator) -> None:
        self.app = app

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.app.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.app.on_assigned(assigned)


class Orchestrator:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self.limits = settings.limits()
        self.sites = Sites()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            client_id=settings.instance_name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=settings.instance_name,
            enable_idempotence=True,
            acks="all",
        )
        self.ready = False
        self.catch_up: dict[TopicPartition, int] = {}
        self.catch_up_started = 0.0
        self.paused_commands: list[TopicPartition] = []
        self.sends: list[asyncio.Future] = []
        # The scheduler's and the credit watch's connections (both off the event path); an
        # engine connects on first use.
        self.database = sync_engine(settings.database_url, pool_pre_ping=True)
        self.offsets: dict[TopicPartition, int] = {}
        self.stopping = asyncio.Event()
        # How many events the last catch-up folded, and how many keep() calls are between
        # changing the state and handing their outputs to the producer.
        self.catch_up_events = 0
        self.keeping = 0
        self.snapshotting = Snapshotting.of(settings, topics.run_events, self.sites, self.settled)

    # --- partitions ----------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.set_ready(False)
        flushed = await self.flush_quietly()
        partitions = [tp.partition for tp in revoked if tp.topic == self.topics.run_events]
        if flushed:  # the next owner starts where this one stopped
            await self.snapshotting.now(partitions)
        self.snapshotting.drop(partitions)
        self.sites.drop_partitions(tp.partition for tp in revoked)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Rebuild the sites of these partitions from their newest snapshot and the events
        after it (from the beginning without one); hold their commands back until then, so
        nothing is decided on half a history."""
        self.catch_up_started = time.monotonic()
        self.catch_up_events = 0
        event_partitions = [tp for tp in assigned if tp.topic == self.topics.run_events]
        self.paused_commands = [tp for tp in assigned if tp.topic == self.topics.run_commands]
        # Nothing is read until its partition is placed: the fetcher starts at the beginning
        # as soon as partitions are assigned, while the snapshots are still being loaded.
        self.consumer.pause(*assigned)
        self.sites.drop_partitions(tp.partition for tp in event_partitions)
        if event_partitions:
            ends = await self.consumer.end_offsets(event_partitions)
            starts = await self.snapshotting.restore(
                [tp.partition for tp in event_partitions],
                {tp.partition: end for tp, end in ends.items()},
            )
            for tp in event_partitions:
                if tp.partition in starts:
                    self.consumer.seek(tp, starts[tp.partition])
            if fresh := [tp for tp in event_partitions if tp.partition not in starts]:
                await self.consumer.seek_to_beginning(*fresh)
            positions = {tp: await self.consumer.position(tp) for tp in event_partitions}
            self.catch_up = {tp: end for tp, end in ends.items() if end > positions[tp]}
            self.snapshotting.placed({tp.partition: at for tp, at in positions.items()})
            self.consumer.resume(*event_partitions)
        log.info("assigned %s; catching up %s", sorted(assigned), self.catch_up)
        await self.check_caught_up()

    async def check_caught_up(self) -> None:
        for tp, end in list(self.catch_up.items()):
            if await self.consumer.position(tp) >= end:
                del self.catch_up[tp]
        if self.catch_up or self.ready:
            return
        self.consumer.resume(*self.paused_commands)
        metrics.replay_seconds.set(time.monotonic() - self.catch_up_started)
        metrics.replayed_events.set(self.catch_up_events)
        # What was just folded, before anything is decided on it: a restart soon after a long
        # catch-up then does not repeat it.
        self.snapshotting.maybe(all_changed=True)
        self.set_ready(True)
        await self.tick_all()
        log.info(
            "caught up in %.2f s, %d events folded",
            time.monotonic() - self.catch_up_started,
            self.catch_up_events,
        )

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        metrics.ready.set(1 if ready else 0)

    # --- records -------------------------------------------------------------------------

    async def consume(self) -> None:
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    await self.on_record(tp, record)
            await self.flush()
            self.snapshotting.maybe()
            if self.catch_up:
                await self.check_caught_up()

    async def on_record(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        is_command = tp.topic == self.topics.run_commands
        try:
            message = decode(record.value)
        except UnreadableMessage as exc:
            group = self.settings.group_id
            with tracing.continuing(record.headers), tracing.consuming(record, group):
                await self.dead_letter(record, exc.reason)
        else:
            # A catch-up replays history: it makes no spans.
            traced = is_command or self.ready
            group = self.settings.group_id
            with tracing.consuming(record, group, message) if traced else tracing.UNTRACED:
                await self.handle(tp.partition, message, is_command)
        if is_command:
            self.offsets[tp] = record.offset + 1
        else:
            self.snapshotting.folded(tp.partition, record.offset + 1)
            if not self.ready:
                self.catch_up_events += 1

    async def handle(self, partition: int, message: Envelope, is_command: bool) -> None:
        before = self.sites.get(message.site_id, partition)
        if is_command:
            with metrics.decide_seconds.time():
                decided, site = handlers.on_command(before, message, utcnow(), self.limits)
            outcome = decided[0].message.type.rsplit(".", 1)[-1] if decided else "repeat"
            metrics.commands.labels(type=message.type, outcome=outcome).inc()
        else:
            decided, site = handlers.on_event(
                before, message, utcnow(), self.limits, deciding=self.ready
            )
            metrics.events_folded.inc()
        await self.keep(site, decided, before)

    async def tick_all(self) -> None:
        for before in self.sites.with_active_run():
            with metrics.decide_seconds.time():
                decided, site = handlers.on_tick(
                    before, before.active_run_id, utcnow(), self.limits
                )
            # Most ticks decide nothing: only those that do make a span.
            traced = tracing.in_run("tick", before.active_run_id) if decided else tracing.UNTRACED
            with traced:
                await self.keep(site, decided, before)
        metrics.count_active(self.sites.active_runs())

    # --- output --------------------------------------------------------------------------

    async def keep(self, site: SiteState, decided: list[Outgoing], before: SiteState) -> None:
        """Keep the handler's new state and send what it decided. Its own events are in that
        state already (the next decision must see them); their copies on the stream are
        repeats. Until every output is handed to the producer, the state is not settled (and
        no snapshot is taken)."""
        self.keeping += 1
        try:
            self.sites.put(site)
            for out in decided:
                if out.is_event:
                    metrics.run_event(out.message, before.run(out.message.run_id))
                    topic = self.topics.run_events
                else:
                    metrics.stage_commands.labels(stage=str(out.stage)).inc()
                    topic = self.topics.stage(out.stage)
                await self.send(topic, out.key, out.message)
        finally:
            self.keeping -= 1

    async def send(self, topic: str, key: bytes, message: Envelope) -> None:
        headers = kafka_headers(message)
        self.sends.append(await self.producer.send(topic, encode(message), key, headers=headers))

    def settled(self) -> bool:
        """Whether every output is handed to the producer and acknowledged by Kafka: only then
        may the state, which holds the orchestrator's own events at once, be snapshot."""
        return not self.keeping and acknowledged(self.sends)

    async def dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.warning(
            "unreadable record %s/%s@%s: %s", record.topic, record.partition, record.offset, reason
        )
        letter = DeadLetter.of(self.settings.group_id, record, reason)
        metrics.dead_letters.labels(record.topic).inc()
        future = await self.producer.send(
            self.topics.dead_letter, letter.encode(), letter.kafka_key, headers=letter.kafka_headers
        )
        self.sends.append(future)

    async def flush(self) -> None:
        """Wait for Kafka to take every output, then commit the commands that caused them:
        a crash in between redelivers commands, whose repeats decide nothing new."""
        sends, self.sends = self.sends, []
        offsets, self.offsets = self.offsets, {}
        if sends:
            await asyncio.gather(*sends)
        if offsets:
            await self.consumer.commit(offsets)

    # --- loops ---------------------------------------------------------------------------

    async def tick_loop(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.tick_seconds)
            if self.ready:
                await self.tick_all()
                await self.flush()

    async def scheduler_loop(self) -> None:
        loop = asyncio.get_running_loop()

        def publish(message: Envelope) -> None:
            topic = self.topics.run_commands
            # The scheduled start is the run's root span, as run_now is for a manual one.
            with tracing.starting_run(
                message.run_id or "",
                f"send {topic}",
                kind=tracing.SpanKind.PRODUCER,
                attributes=tracing.send_attributes(topic, message),
            ):
                sent = self.producer.send_and_wait(
                    topic, encode(message), message.key, headers=kafka_headers(message)
                )
                asyncio.run_coroutine_threadsafe(sent, loop).result(timeout=30)

        while not self.stopping.is_set():
            if self.ready:
                try:
                    started = await asyncio.to_thread(
                        scheduler.run_once,
                        self.database,
                        self.settings.scheduler_clock or utcnow(),
                        self.settings.lookback_seconds,
                        publish,
                    )
                    metrics.scheduled_starts.inc(len(started))
                except Exception:
                    log.exception("scheduler pass failed; next pass in one interval")
                await self.sleep(self.settings.scheduler_interval_seconds)
            else:
                await self.sleep(0.2)

    async def credit_watch_loop(self) -> None:
        """Resume the runs paused for credits whose balance now pays (credit_watch)."""
        while not self.stopping.is_set():
            await self.sleep(self.settings.credit_check_seconds)
            waiting = credit_watch.waiting_for_credits(self.sites.active_runs())
            if not self.ready or not waiting:
                continue
            try:
                funds = await asyncio.to_thread(_read_funds, self.database, waiting)
                for command in credit_watch.resumes(waiting, funds, utcnow()):
                    with tracing.sending(self.topics.run_commands, command):
                        await self.send(self.topics.run_commands, command.key, command)
                    log.info("run %s: %s", command.run_id, command.data.reason)
                await self.flush()
            except Exception:
                log.exception("credit check failed; next check in one interval")

    async def sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(
            [self.topics.run_commands, self.topics.run_events], listener=Rebalance(self)
        )
        loops = [self.consume(), self.tick_loop(), self.credit_watch_loop()]
        if self.settings.scheduler_enabled:
            loops.append(self.scheduler_loop())
        tasks = [asyncio.create_task(c) for c in loops]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a loop that died takes the process down: restart rebuilds
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if await self.flush_quietly():
                await self.snapshotting.now(self.snapshotting.owned())
            await self.consumer.stop()
            await self.producer.stop()
            self.snapshotting.close()
            self.database.dispose()

    async def flush_quietly(self) -> bool:
        try:
            await self.flush()
        except Exception:
            log.exception("final flush failed; the commands will be redelivered")
            return False
        return True


async def serve(settings: Settings) -> None:
    app = Orchestrator(settings, settings.topics)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stopping.set)
    await app.run()


def _read_funds(engine, runs: list) -> dict[str, credit_watch.Funds]:
    with engine.connect() as conn:
        return credit_watch.read_funds(conn, runs)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    tracing.configure("orchestrator", settings.otel_exporter_otlp_endpoint)
    metrics.ready.set(0)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    asyncio.run(serve(settings))
