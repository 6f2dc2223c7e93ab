"""When and how the orchestrator snapshots its fold (docs/adr/0013): the offset folded to in each
owned run-events partition, the cadence, and the one write in flight. The runner tells it what
was folded, and the catch-up when partitions come and go; it restores the sites of assigned
partitions, and takes snapshots only when `settled()` says the state holds nothing the stream
might not get (every output acknowledged, no hand-over open). Knows partitions as numbers, not
Kafka."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from contracts.db.engines import sync_engine
from orchestrator import metrics
from orchestrator.settings import Settings
from orchestrator.sites import Sites
from orchestrator.snapshots import value as snapshots
from orchestrator.snapshots.store import SnapshotStore, Stored
from orchestrator.snapshots.value import Cadence, Snapshot, UnreadableSnapshot

log = logging.getLogger("orchestrator")


def acknowledged(sends: Iterable[asyncio.Future]) -> bool:
    """Whether Kafka took every one of these sends (none pending, cancelled or failed)."""
    return all(sent.done() and not sent.cancelled() and sent.exception() is None for sent in sends)


class Snapshotting:
    def __init__(
        self,
        store: SnapshotStore | None,
        sites: Sites,
        settings: Settings,
        settled: Callable[[], bool],
    ) -> None:
        """`store` None: snapshots are off. `settled()`: whether the state may be captured now."""
        self.store = store
        self.sites = sites
        self.settings = settings
        self.settled = settled
        self.cadence = Cadence(settings.snapshot_every_events, settings.snapshot_every_seconds)
        # The next run-events offset to fold, per owned partition: every event before it is in
        # self.sites.
        self.folded_to: dict[int, int] = {}
        self.writing: asyncio.Task | None = None

    @classmethod
    def of(
        cls, settings: Settings, topic: str, sites: Sites, settled: Callable[[], bool]
    ) -> Snapshotting:
        """With the snapshot table of run-events topic `topic`, if snapshots are enabled."""
        store = (
            SnapshotStore(
                sync_engine(
                    settings.database_url, pool_pre_ping=True, connect_args={"connect_timeout": 5}
                ),
                topic,
            )
            if settings.snapshots_enabled
            else None
        )
        return cls(store, sites, settings, settled)

    # --- what the runner tells -------------------------------------------------------------

    async def restore(self, partitions: list[int], ends: dict[int, int]) -> dict[int, int]:
        """Put back the sites of each partition from its newest snapshot that can be read;
        returns the offset to fold each restored partition from."""
        if self.store is None:
            return {}
        try:
            stored = await asyncio.wait_for(
                asyncio.to_thread(self.store.load, partitions),
                self.settings.snapshot_load_timeout_seconds,
            )
        except Exception as exc:
            log.warning("snapshots could not be loaded, folding from the beginning: %r", exc)
            metrics.snapshots.labels("failed").inc()
            return {}
        starts: dict[int, int] = {}
        for partition in partitions:
            row = stored.get(partition)
            snapshot = (
                None
                if row is None
                else await asyncio.to_thread(self.readable, row, ends[partition])
            )
            if snapshot is not None:
                self.sites.restore(partition, snapshot.sites)
                starts[partition] = snapshot.offset
                metrics.snapshots.labels("loaded").inc()
                log.info(
                    "partition %s: snapshot of %d sites at offset %d of %d",
                    partition,
                    len(snapshot.sites),
                    snapshot.offset,
                    ends[partition],
                )
        return starts

    def placed(self, positions: dict[int, int]) -> None:
        """These partitions are folded from these offsets on, their state as the newest
        snapshot (or none) has it."""
        self.folded_to.update(positions)
        self.cadence.start(list(positions), time.monotonic())

    def folded(self, partition: int, offset: int) -> None:
        """The event before `offset` is in the state."""
        self.folded_to[partition] = offset
        self.cadence.fold(partition)

    def drop(self, partitions: list[int]) -> None:
        self.cadence.drop(partitions)
        for partition in partitions:
            self.folded_to.pop(partition, None)

    def owned(self) -> list[int]:
        return list(self.folded_to)

    def close(self) -> None:
        if self.store is not None:
            self.store.engine.dispose()

    # --- taking them -----------------------------------------------------------------------

    def maybe(self, all_changed: bool = False) -> None:
        """Start writing the snapshots that are due, unless some are being written; with
        `all_changed`, of every partition that changed since its last, after those."""
        writing = self.writing if self.writing is not None and not self.writing.done() else None
        if self.store is None or (writing is not None and not all_changed):
            return
        now = time.monotonic()
        partitions = self.cadence.changed() if all_changed else self.cadence.due(now)
        if partitions and (taken := self.capture(partitions)):
            self.writing = asyncio.create_task(self.write(taken, self.counted(taken), writing))

    async def now(self, partitions: list[int]) -> None:
        """Write what changed in these partitions since their last snapshots, and wait."""
        if self.store is None:
            return
        if self.writing is not None:
            await asyncio.gather(self.writing, return_exceptions=True)
        changed = set(self.cadence.changed())
        if taken := self.capture([p for p in partitions if p in changed]):
            await self.write(taken, self.counted(taken))

    def capture(self, partitions: list[int]) -> list[Snapshot]:
        """The owned partitions among these as they are now, or none unless settled: the state
        holds the orchestrator's own events at once, and a snapshot must not hold one the
        stream might never get. Synchronous, so the state and the offsets are of one moment."""
        if not self.settled():
            return []
        return [
            Snapshot(p, self.folded_to[p], self.sites.of_partition(p))
            for p in partitions
            if p in self.folded_to
        ]

    def counted(self, taken: list[Snapshot]) -> dict[int, int]:
        """The partitions of `taken` start counting again, from the moment of their capture."""
        return self.cadence.taken([s.partition for s in taken], time.monotonic())

    async def write(
        self, taken: list[Snapshot], counts: dict[int, int], after: asyncio.Task | None = None
    ) -> None:
        if after is not None:
            await asyncio.gather(after, return_exceptions=True)
        for snapshot in taken:
            try:
                await asyncio.to_thread(self.save, snapshot)
            except Exception as exc:
                log.warning("partition %s: snapshot not written: %r", snapshot.partition, exc)
                metrics.snapshots.labels("failed").inc()
                self.cadence.failed({snapshot.partition: counts.get(snapshot.partition, 0)})

    def readable(self, row: Stored, end: int) -> Snapshot | None:
        """The stored snapshot, or None with a warning if it cannot be used (in a thread)."""
        try:
            snapshot = snapshots.decode(row.body)
            if snapshot.partition != row.partition or snapshot.offset != row.offset:
                raise UnreadableSnapshot("its partition or offset is not the row's")
        except UnreadableSnapshot as exc:
            log.warning(
                "partition %s: snapshot ignored, folding from the beginning: %s", row.partition, exc
            )
            metrics.snapshots.labels("ignored").inc()
            return None
        if snapshot.offset > end:
            log.warning(
                "partition %s: snapshot at offset %d is past the end %d (a topic made again?); "
                "deleted, folding from the beginning",
                row.partition,
                snapshot.offset,
                end,
            )
            metrics.snapshots.labels("ignored").inc()
            self.store.delete(row.partition)
            return None
        return snapshot

    def save(self, snapshot: Snapshot) -> None:
        """Encode and store one snapshot (in a thread: it takes time with many active runs)."""
        body = snapshots.encode(snapshot)
        kept = self.store.save(
            snapshot.partition,
            snapshot.offset,
            snapshots.SNAPSHOT_VERSION,
            body,
            self.settings.instance_name,
        )
        metrics.snapshot_bytes.set(len(body))
        metrics.snapshots.labels("written" if kept else "superseded").inc()
