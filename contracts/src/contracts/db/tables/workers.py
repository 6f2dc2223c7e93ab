"""The stage workers' tables: what they publish (the outbox), what they have handled, their own
record of each stage's work, whether a run may go on, and the AI gate they share.

Only the stage workers write them, except `item_failures`, which the gateway clears when an
operator retries an item, and `ai_calls`, which the gateway reads for costs.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

from contracts.db.tables.schema import (
    created_at,
    id_column,
    metadata,
    one_of,
    site_id,
    timestamp,
    updated_at,
)

outbox = sa.Table(
    "outbox",
    metadata,
    # Identity order is publish order.
    id_column(),
    sa.Column("message_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("message_key", BYTEA),
    sa.Column("payload", JSONB, nullable=False),
    # Kafka headers as a list of [name, value] pairs.
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    created_at(),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
)

processed_messages = sa.Table(
    "processed_messages",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("message_id", sa.Uuid, primary_key=True),
    timestamp("processed_at"),
    # For pruning old tracking records.
    sa.Index("ix_processed_messages_processed_at", "processed_at"),
)

# The stage workers' own record of their work, so that a redelivered command learns what was
# done from the worker's tables and not from the outbox JSON (which can then be pruned) or from
# the log-sink's read model.
stage_picks = sa.Table(
    "stage_picks",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.SmallInteger, primary_key=True),
    # The items the stage picked, in pick order: the total, and each item's place in the stage.
    sa.Column("item_ids", sa.ARRAY(sa.BigInteger), nullable=False),
    created_at(),
)

stage_item_results = sa.Table(
    "stage_item_results",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.SmallInteger, primary_key=True),
    sa.Column("item_id", sa.BigInteger, primary_key=True),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("credits", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("outputs", sa.Integer, nullable=False, server_default=sa.text("0")),
    created_at(),
    sa.CheckConstraint("outcome IN ('processed', 'failed')", name="outcome"),
)

# How often an item of stages 1-5 failed, across runs: at the budget (contracts.db.pending) the
# stage stops picking it until an operator retries it. Images keep their own `failed` status.
item_failures = sa.Table(
    "item_failures",
    metadata,
    sa.Column("stage", sa.SmallInteger, primary_key=True),
    sa.Column("item_id", sa.BigInteger, primary_key=True),
    site_id(),
    sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("last_run_id", sa.Text, nullable=False),
    updated_at(),
    sa.Index("ix_item_failures_site_id", "site_id"),
)

# Whether a run may go on, as the workers learnt it from the run-events topic.
worker_run_status = sa.Table(
    "worker_run_status",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stopped", sa.Boolean, nullable=False),
    # Stopped for good (completed, cancelled, failed), not paused: an economy run's provider
    # batches are cancelled then.
    sa.Column("ended", sa.Boolean, nullable=False, server_default=sa.false()),
    updated_at(),
)


# --- The AI gate: one row per provider + model (+ key) that every stage worker shares, and one
# row per AI call with what it used and cost (stage_workers.gate). ---

ai_lanes = sa.Table(
    "ai_lanes",
    metadata,
    sa.Column("lane", sa.Text, primary_key=True),
    # stage_workers.gate.lane.LaneState; times are epoch seconds of the database's clock.
    sa.Column("requests", sa.Float, nullable=False),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("refilled_at", sa.Float, nullable=False),
    sa.Column("cool_until", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("cool_since", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("circuit", sa.Text, nullable=False, server_default="closed"),
    sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("opened_at", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("probe_at", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("probe_until", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("backoff", sa.Float, nullable=False, server_default=sa.text("0")),
    # [{process, runs, credit, at}]: each worker process's part of the lane (lane.Share).
    sa.Column("shares", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    updated_at(),
    one_of("circuit", ("closed", "open", "probing")),
)

AI_CALL_OUTCOMES = ("answered", "rate_limited", "unavailable", "refused", "fatal")
# How a call reached the provider: on its own, or as a line of a provider batch (economy runs).
AI_CALL_ROUTES = ("call", "provider_batch")

ai_calls = sa.Table(
    "ai_calls",
    metadata,
    id_column(),
    timestamp("at"),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("site_id", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("stage", sa.SmallInteger, nullable=False),
    sa.Column("batch_id", sa.Text, nullable=False),
    # The item the call was for; stage 1 clusters several keywords in one call (`items`).
    sa.Column("item_id", sa.BigInteger),
    sa.Column("items", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("function", sa.Text, nullable=False),
    sa.Column("model_requested", sa.Text, nullable=False),
    sa.Column("model_answered", sa.Text),
    sa.Column("input_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("output_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("cached_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("images", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("image_size", sa.Text),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    # How long the call waited at the gate (the budget, a cool-down, an open circuit) first.
    sa.Column("waited_ms", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    # Money at the price table's version; NULL when the table has no price for the model.
    sa.Column("cost_usd", sa.Numeric(14, 8)),
    sa.Column("price_version", sa.Text),
    sa.Column("via", sa.Text, nullable=False, server_default="call"),
    # What the call would have cost more at the standard price (a provider batch's discount).
    sa.Column("saved_usd", sa.Numeric(14, 8)),
    one_of("outcome", AI_CALL_OUTCOMES),
    one_of("via", AI_CALL_ROUTES),
    sa.Index("ix_ai_calls_run_id", "run_id"),
    sa.Index("ix_ai_calls_site_id_at", "site_id", "at"),
    sa.Index("ix_ai_calls_account_id_at", "account_id", "at"),
)

# One row per AI call of a unit: in flight, answered, or written. A batch dispatched again after
# its worker was lost finds the call in flight (and waits for it), its answer (and uses it) or
# the unit written (and has nothing to do): it never asks the provider twice. Pruned with the
# handled commands.
ai_answers = sa.Table(
    "ai_answers",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.SmallInteger, primary_key=True),
    # The item's id, or for a unit of several items (stage 1) a digest of their ids.
    sa.Column("unit", sa.Text, primary_key=True),
    sa.Column("function", sa.Text, primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),  # the worker process making the call
    # Epoch seconds of the database's clock: past it, the call counts as lost.
    sa.Column("held_until", sa.Float, nullable=False),
    sa.Column("draft", BYTEA),  # the answer, once there is one
    sa.Column("records", JSONB),  # the records of the call's attempts, written with the unit
    # The unit was written (or failed): a copy of its batch still waiting has nothing to do.
    sa.Column("written", sa.Boolean, nullable=False, server_default=sa.false()),
    created_at(),
    sa.Index("ix_ai_answers_created_at", "created_at"),
)

# The provider batches of economy runs (the provider's Batch API: a file of requests, answered
# within 24 h at half the price). A row is written before the file is uploaded and updated after
# each step, so a worker that takes over finds the batch by its provider id, or by the metadata
# it was created with, and never creates a second one.
# The PostgreSQL channel on which the gateway, told by the provider's verified webhook that a
# batch has ended, wakes the workers waiting for it (payload: the provider's batch id).
PROVIDER_BATCH_CHANNEL = "automation_provider_batches"
PROVIDER_BATCH_STATUSES = (
    "preparing",  # the row exists; the requests file may not be uploaded yet
    "uploaded",  # the file is uploaded; the batch may not be created yet
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
    "failed",
)
provider_batches = sa.Table(
    "provider_batches",
    metadata,
    # Deterministic: run, stage, the stage batch, the round (2 for what an expired batch left)
    # and the part (a stage batch too big for one provider batch is split).
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("site_id", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("stage", sa.SmallInteger, nullable=False),
    sa.Column("round", sa.SmallInteger, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("endpoint", sa.Text, nullable=False),
    # The custom ids of its requests: the names of the units (gate/journal.py's UnitKey).
    sa.Column("custom_ids", JSONB, nullable=False),
    sa.Column("input_file_id", sa.Text),
    sa.Column("provider_batch_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="preparing"),
    sa.Column("completed", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("failed", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("output_file_id", sa.Text),
    sa.Column("error_file_id", sa.Text),
    created_at(),
    updated_at(),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    one_of("status", PROVIDER_BATCH_STATUSES),
    sa.Index("ix_provider_batches_run_id_stage", "run_id", "stage"),
)
