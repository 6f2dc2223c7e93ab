"""When the orchestrator snapshots: never ahead of its state. A snapshot is captured only when
every output is acknowledged and no keep is in progress; restored, it puts the sites back."""

from __future__ import annotations

import asyncio

from orchestrator.settings import Settings
from orchestrator.sites import Sites, SiteState
from orchestrator.snapshots import value as snapshots
from orchestrator.snapshots.keeper import Snapshotting, acknowledged
from orchestrator.snapshots.store import SnapshotStore, Stored
from tests.support.runs import SITE, complete_run

PARTITION = 3


class FakeStore(SnapshotStore):
    def __init__(self) -> None:
        super().__init__(engine=None, topic="run-events")
        self.rows: dict[int, Stored] = {}

    def load(self, partitions: list[int]) -> dict[int, Stored]:
        return {p: row for p, row in self.rows.items() if p in partitions}

    def save(self, partition: int, offset: int, version: int, body: bytes, written_by: str) -> bool:
        if partition in self.rows and self.rows[partition].offset > offset:
            return False
        self.rows[partition] = Stored(partition, offset, version, body)
        return True

    def delete(self, partition: int) -> None:
        self.rows.pop(partition, None)


def a_site() -> SiteState:
    site = SiteState(SITE)
    for event in complete_run():
        site = site.apply(event)
    return site


def snapshotting(store: FakeStore, sites: Sites, settled) -> Snapshotting:
    settings = Settings(snapshot_every_events=1, instance_name="test")
    return Snapshotting(store, sites, settings, settled)


async def test_no_snapshot_while_a_send_is_unacknowledged_or_a_keep_in_progress():
    store, sites = FakeStore(), Sites()
    sends: list[asyncio.Future] = [asyncio.get_running_loop().create_future()]
    keeping = [0]
    taker = snapshotting(store, sites, lambda: not keeping[0] and acknowledged(sends))
    taker.placed({PARTITION: 0})
    sites.get(SITE, PARTITION)
    sites.put(a_site())
    taker.folded(PARTITION, 40)

    taker.maybe()
    taker.maybe(all_changed=True)
    await taker.now([PARTITION])
    assert taker.writing is None and store.rows == {}

    sends[0].set_result(None)
    keeping[0] = 1
    await taker.now([PARTITION])
    assert store.rows == {}

    keeping[0] = 0
    taker.maybe()
    await taker.writing
    assert store.rows[PARTITION].offset == 40
    assert snapshots.decode(store.rows[PARTITION].body).sites == (a_site(),)


def test_a_failed_or_cancelled_send_is_not_acknowledged():
    loop = asyncio.new_event_loop()
    failed, cancelled, done = (loop.create_future() for _ in range(3))
    failed.set_exception(RuntimeError("broker gone"))
    cancelled.cancel()
    done.set_result(None)
    assert acknowledged([done]) and acknowledged([])
    assert not acknowledged([done, failed]) and not acknowledged([cancelled])
    loop.close()


async def test_a_restored_partition_folds_on_from_its_snapshot():
    store, written = FakeStore(), Sites()
    taker = snapshotting(store, written, lambda: True)
    taker.placed({PARTITION: 0})
    written.get(SITE, PARTITION)
    written.put(a_site())
    taker.folded(PARTITION, 40)
    await taker.now(taker.owned())

    restored = Sites()
    starts = await snapshotting(store, restored, lambda: True).restore(
        [PARTITION, 4], {PARTITION: 50, 4: 9}
    )
    assert starts == {PARTITION: 40}
    assert restored.of_partition(PARTITION) == (a_site(),)
