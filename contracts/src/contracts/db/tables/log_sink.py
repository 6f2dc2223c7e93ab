"""The log-sink's tables: the run read model, written only by the log-sink from the fold of the
event stream (`contracts.state.fold`).

The gateway reads it for a site's current run, its history and what is being processed. The
stage workers do not: they learn whether a run may go on from the run-events topic, into their
own `worker_run_status` (in `workers`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from contracts.db.tables.schema import metadata, one_of, updated_at

RUN_STATUSES = ("running", "paused", "completed", "cancelled", "failed", "rejected")
STAGE_STATUSES = ("pending", "running", "completed", "failed")

automation_runs = sa.Table(
    "automation_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("site_id", sa.BigInteger, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("current_stage", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("credits_used", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("estimate", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("pause_reason", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("paused_at", sa.DateTime(timezone=True)),
    sa.Column("resumed_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("last_event_at", sa.DateTime(timezone=True)),
    # Where the run's events begin on the events topic (all of a run's events share a
    # partition): live streams read the run from here.
    sa.Column("stream_partition", sa.Integer),
    sa.Column("first_offset", sa.BigInteger),
    updated_at(),
    one_of("status", RUN_STATUSES),
    sa.Index("ix_automation_runs_site_id_started_at", "site_id", "started_at"),
    sa.Index("ix_automation_runs_account_id", "account_id"),
)

automation_run_stages = sa.Table(
    "automation_run_stages",
    metadata,
    sa.Column(
        "run_id",
        sa.Text,
        sa.ForeignKey("automation_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("stage", sa.Integer, primary_key=True),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("total_items", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("processed_items", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("failed_items", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("items_out", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("credits_used", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("partial", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error", sa.Text),
    # [{id, title}] of items in batches in flight, and of the next open items (at most 10).
    sa.Column("currently_processing", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("up_next", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("remaining_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    # Set while the AI provider holds the stage's calls back (its circuit is open, or it asked
    # for a long rest); all NULL otherwise.
    sa.Column("waiting_provider", sa.Text),
    sa.Column("waiting_model", sa.Text),
    sa.Column("waiting_reason", sa.Text),
    sa.Column("waiting_since", sa.DateTime(timezone=True)),
    # Set while a stage batch of an economy run waits for the provider's batch (run_rows.py).
    sa.Column("provider_batch", JSONB),
    updated_at(),
    one_of("status", STAGE_STATUSES),
    sa.CheckConstraint("stage BETWEEN 1 AND 7", name="stage"),
)
