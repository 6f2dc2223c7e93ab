"""Where the snapshots are kept: the orchestrator's own table `orchestrator_snapshots`, one row
per run-events topic and partition, overwritten by newer ones (docs/adr/0013). Blocking calls:
snapshots/keeper.py runs them in a thread."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from contracts.db import tables as t

table = t.orchestrator_snapshots


@dataclass(frozen=True)
class Stored:
    partition: int
    offset: int
    version: int
    body: bytes


class SnapshotStore:
    def __init__(self, engine: sa.Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def load(self, partitions: list[int]) -> dict[int, Stored]:
        query = sa.select(
            table.c.partition, table.c.next_offset, table.c.version, table.c.body
        ).where(table.c.topic == self.topic, table.c.partition.in_(partitions))
        with self.engine.connect() as conn:
            return {row.partition: Stored(*row) for row in conn.execute(query)}

    def save(self, partition: int, offset: int, version: int, body: bytes, written_by: str) -> bool:
        """Keep this snapshot unless one at a later offset is there already (from an instance
        that owned the partition after this one). Returns whether it was kept."""
        values = dict(
            topic=self.topic,
            partition=partition,
            next_offset=offset,
            version=version,
            body=body,
            written_by=written_by,
        )
        upsert = insert(table).values(values)
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.c.topic, table.c.partition],
            set_={name: upsert.excluded[name] for name in values if name not in ("topic",)}
            | {"written_at": sa.func.now()},
            where=table.c.next_offset <= upsert.excluded.next_offset,
        ).returning(table.c.next_offset)
        with self.engine.begin() as conn:
            return conn.execute(upsert).first() is not None

    def delete(self, partition: int) -> None:
        """Forget a snapshot that cannot be of this topic (its offset is past the end)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(table).where(table.c.topic == self.topic, table.c.partition == partition)
            )
