"""Gauges that are looked up rather than counted: how far consumer groups are behind the end
of their topics, and how many outbox rows wait to be published and for how long.

A daemon thread with an event loop of its own polls the probes every few seconds, so a slow
broker or database makes a gauge late, never a scrape or a message handler slow. aiokafka is
imported lazily: every service that starts a monitor has it, and contracts need not.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from contracts.db import tables as t

log = logging.getLogger(__name__)
POLL_SECONDS = 5.0


class Probe(Protocol):
    async def poll(self) -> None: ...

    async def close(self) -> None: ...


class ConsumerLag:
    """Per group and topic: records between the group's committed offsets and the ends of the
    partitions. A partition the group never committed counts from its first kept record (the
    groups here start at the earliest offset)."""

    def __init__(self, bootstrap: str, groups: Mapping[str, Sequence[str]], gauge: Any) -> None:
        self.bootstrap = bootstrap
        self.groups = {group: tuple(topics) for group, topics in groups.items()}
        self.gauge = gauge
        self._admin: Any = None
        self._consumer: Any = None

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()

    async def poll(self) -> None:
        if self._admin is None:
            await self._connect()
        for group, topics in self.groups.items():
            for topic, lag in (await self.lag(group, topics)).items():
                self.gauge.labels(group, topic).set(lag)

    async def lag(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        from aiokafka import TopicPartition

        partitions = [
            TopicPartition(topic["topic"], p["partition"])
            for topic in await self._admin.describe_topics(list(topics))
            for p in topic["partitions"]
        ]
        committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        behind = dict.fromkeys(topics, 0)
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            behind[tp.topic] += max(ends[tp] - max(done, starts[tp]), 0)
        return behind

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()


class RowBacklog:
    """Rows waiting in a table, and for how long the longest-waiting one has: `query` selects
    (count, seconds), seconds NULL when no row waits. A negative age (a row due later) is 0."""

    def __init__(self, database_url: str, query: sa.Select, rows: Any, age: Any) -> None:
        self.database_url = database_url
        self.query = query
        self.rows = rows
        self.age = age
        self._engine: sa.Engine | None = None

    async def poll(self) -> None:
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url, pool_size=1, max_overflow=0)
        count, waited = await asyncio.to_thread(self._read)
        self.rows.set(count)
        self.age.set(max(0.0, waited or 0.0))

    def _read(self) -> tuple[int, float | None]:
        assert self._engine is not None
        with self._engine.connect() as conn:
            count, waited = conn.execute(self.query).one()
        return count, None if waited is None else float(waited)

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def seconds_since(column: sa.ColumnElement) -> sa.ColumnElement:
    """How long ago the earliest value of `column` was, in seconds, by the database's clock."""
    return sa.func.extract("epoch", sa.func.now() - sa.func.min(column))


class OutboxBacklog(RowBacklog):
    """Unpublished outbox rows of the topics a relay serves, and the age of the oldest one."""

    def __init__(self, database_url: str, topics: Iterable[str], rows: Any, age: Any) -> None:
        o = t.outbox.c
        query = sa.select(sa.func.count(), seconds_since(o.created_at)).where(
            o.published_at.is_(None), o.topic.in_(tuple(sorted(set(topics))))
        )
        super().__init__(database_url, query, rows, age)


class Monitor:
    def __init__(self, probes: Sequence[Probe], interval: float = POLL_SECONDS) -> None:
        self.probes = list(probes)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-monitor", daemon=True)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval * 3)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        failing: set[int] = set()
        while not self._stop.is_set():
            for n, probe in enumerate(self.probes):
                try:
                    await asyncio.wait_for(probe.poll(), timeout=self.interval * 2)
                    failing.discard(n)
                except Exception as exc:
                    if n not in failing:  # say it once, not every few seconds
                        log.warning("metrics probe %s failed: %r", type(probe).__name__, exc)
                    failing.add(n)
                    await _quietly(probe.close())
            await asyncio.to_thread(self._stop.wait, self.interval)
        for probe in self.probes:
            await _quietly(probe.close())


async def _quietly(closing: Any) -> None:
    try:
        await closing
    except Exception:
        log.debug("closing a metrics probe failed", exc_info=True)
