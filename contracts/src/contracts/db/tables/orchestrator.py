"""The orchestrator's tables: the scheduler's claimed slots and the snapshots of its fold."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA

from contracts.db.tables.schema import metadata, site_id, timestamp

# One row per site and schedule slot: the replica whose insert lands starts the slot's run, so a
# slot starts one run however many orchestrators are up.
schedule_slots = sa.Table(
    "schedule_slots",
    metadata,
    site_id(primary_key=True),
    sa.Column("slot_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    timestamp("claimed_at"),
)


# The orchestrator's snapshots of its fold, one per run-events topic and partition: a cache
# it rebuilds from the stream whenever it is missing or unreadable (docs/adr/0013).

orchestrator_snapshots = sa.Table(
    "orchestrator_snapshots",
    metadata,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    # Every event of the partition before this offset is in the snapshot.
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("body", BYTEA, nullable=False),
    sa.Column("written_by", sa.Text, nullable=False),
    timestamp("written_at"),
)
