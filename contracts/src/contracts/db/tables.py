"""The PostgreSQL schema as SQLAlchemy Core tables. Services write with Core statements.

Statuses are text with a CHECK rather than PostgreSQL enums: changing the allowed set is then a
constraint swap in a migration, while an enum value cannot be removed at all, and a new one is not
usable in the transaction that adds it.

A change here needs a new migration in `contracts/db/migrations/versions/`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

from contracts.credits import START_CHECKS
from contracts.values import DEFAULT_BATCH_SIZES

metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)

KEYWORD_STATUSES = ("new", "mapped")
CLUSTER_STATUSES = ("new", "mapped")
IDEA_STATUSES = ("new", "queued")
TASK_STATUSES = ("queued", "completed")
CONTENT_STATUSES = ("draft", "review", "approved", "rejected")
IMAGE_KINDS = ("featured", "in_article")
IMAGE_STATUSES = ("pending", "generated", "failed")
FREQUENCIES = ("daily", "weekly", "monthly")

BATCH_SIZE_RANGE = (1, 500)
DELAY_RANGE_SECONDS = (0, 3600)
CONCURRENCY_RANGE = (1, 32)


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _updated_at() -> sa.Column:
    return sa.Column(
        "updated_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
        onupdate=sa.func.now(),
    )


def _site_id() -> sa.Column:
    return sa.Column(
        "site_id", sa.BigInteger, sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    )


def _created_by_run_id() -> sa.Column:
    """The run that made the row: traceability, and lets a retried batch find its own output."""
    return sa.Column("created_by_run_id", sa.Text)


def _one_of(column: str, values: tuple[str, ...], name: str | None = None) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name or column)


def _between(column: str, bounds: tuple[int, int]) -> sa.CheckConstraint:
    low, high = bounds
    return sa.CheckConstraint(f"{column} BETWEEN {low} AND {high}", name=column)


def _site_status_index(table: str) -> sa.Index:
    return sa.Index(f"ix_{table}_site_id_status", "site_id", "status")


accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("credit_balance", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    _created_at(),
    sa.CheckConstraint("credit_balance >= 0", name="credit_balance_not_negative"),
)

users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("email", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    _created_at(),
    sa.Index("ix_users_account_id", "account_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column(
        "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    # The first characters of the token, shown to people so they can tell tokens apart.
    sa.Column("token_prefix", sa.Text, nullable=False),
    # sha256 hex of the token; the token itself is shown once and never stored.
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    _created_at(),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("token_hash ~ '^[0-9a-f]{64}$'", name="token_hash_is_sha256_hex"),
    sa.Index("ix_api_tokens_account_id", "account_id"),
    sa.Index("ix_api_tokens_user_id", "user_id"),
)

# Console sessions that were signed out: the cookie is signed and stateless, so its nonce is
# kept here until the session would have expired anyway.
console_sign_outs = sa.Table(
    "console_sign_outs",
    metadata,
    sa.Column("nonce", sa.Text, primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

sites = sa.Table(
    "sites",
    metadata,
    _id(),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("domain", sa.Text),
    sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
    _created_at(),
    sa.Index("ix_sites_account_id", "account_id"),
)

clusters = sa.Table(
    "clusters",
    metadata,
    _id(),
    _site_id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False, server_default="new"),
    # Deterministic key of the keyword batch the cluster came from: a redelivered batch hits
    # the unique constraint instead of creating a second cluster.
    sa.Column("source_key", sa.Text, nullable=False),
    _created_by_run_id(),
    _created_at(),
    _one_of("status", CLUSTER_STATUSES),
    sa.UniqueConstraint("site_id", "source_key"),
    _site_status_index("clusters"),
)

keywords = sa.Table(
    "keywords",
    metadata,
    _id(),
    _site_id(),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("volume", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("difficulty", sa.Integer),  # null: not known (the import did not give one)
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.Text, nullable=False, server_default="new"),
    sa.Column("cluster_id", sa.BigInteger, sa.ForeignKey("clusters.id", ondelete="SET NULL")),
    _created_at(),
    _one_of("status", KEYWORD_STATUSES),
    sa.CheckConstraint("length(btrim(text)) > 0", name="text_not_blank"),
    sa.CheckConstraint("volume >= 0", name="volume_not_negative"),
    sa.CheckConstraint("difficulty >= 0", name="difficulty_not_negative"),
    # Re-importing "SEO Tips" after "seo tips" must not add a second keyword.
    sa.Index(
        "uq_keywords_site_id_lower_text", "site_id", sa.func.lower(sa.text("text")), unique=True
    ),
    # Stage 1 picks new, unclustered, enabled keywords of a site.
    sa.Index(
        "ix_keywords_stage_1_pending",
        "site_id",
        "status",
        postgresql_where=sa.text("cluster_id IS NULL AND NOT disabled"),
    ),
    sa.Index("ix_keywords_cluster_id", "cluster_id"),
)

content_ideas = sa.Table(
    "content_ideas",
    metadata,
    _id(),
    _site_id(),
    sa.Column(
        "cluster_id",
        sa.BigInteger,
        sa.ForeignKey("clusters.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("outline", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False, server_default="new"),
    # Ordinal within the cluster's ideas; with the unique constraint, a redelivered stage 2
    # batch cannot add the same idea twice.
    sa.Column("position", sa.Integer, nullable=False),
    _created_by_run_id(),
    _created_at(),
    _one_of("status", IDEA_STATUSES),
    sa.CheckConstraint("position >= 0", name="position_not_negative"),
    sa.UniqueConstraint("cluster_id", "position"),
    _site_status_index("content_ideas"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    _id(),
    _site_id(),
    sa.Column(
        "idea_id",
        sa.BigInteger,
        sa.ForeignKey("content_ideas.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("brief", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    _created_by_run_id(),
    _created_at(),
    _one_of("status", TASK_STATUSES),
    _site_status_index("tasks"),
)

content = sa.Table(
    "content",
    metadata,
    _id(),
    _site_id(),
    sa.Column(
        "task_id",
        sa.BigInteger,
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.Column("word_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("status", sa.Text, nullable=False, server_default="draft"),
    sa.Column("reviewed_at", sa.DateTime(timezone=True)),
    sa.Column("reviewed_by", sa.BigInteger, sa.ForeignKey("users.id", ondelete="SET NULL")),
    # Every reviewer's change (an edit, approving, rejecting) adds one: the ETag, so an edit
    # made on a stale copy is refused rather than merged.
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    # The AI's title and body, kept by the first edit (NULL: never edited).
    sa.Column("original_title", sa.Text),
    sa.Column("original_body", sa.Text),
    sa.Column("edited_at", sa.DateTime(timezone=True)),
    sa.Column("edited_by", sa.BigInteger, sa.ForeignKey("users.id", ondelete="SET NULL")),
    sa.Column("reject_reason", sa.Text),
    _created_by_run_id(),
    _created_at(),
    _updated_at(),
    _one_of("status", CONTENT_STATUSES),
    sa.CheckConstraint("word_count >= 0", name="word_count_not_negative"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    _site_status_index("content"),
)

images = sa.Table(
    "images",
    metadata,
    _id(),
    _site_id(),
    sa.Column(
        "content_id",
        sa.BigInteger,
        sa.ForeignKey("content.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("file_path", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("error", sa.Text),
    _created_by_run_id(),
    _created_at(),
    _updated_at(),
    _one_of("kind", IMAGE_KINDS),
    _one_of("status", IMAGE_STATUSES),
    sa.CheckConstraint("position >= 0", name="position_not_negative"),
    sa.UniqueConstraint("content_id", "position"),
    _site_status_index("images"),
)

automation_configs = sa.Table(
    "automation_configs",
    metadata,
    sa.Column(
        "site_id",
        sa.BigInteger,
        sa.ForeignKey("sites.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("is_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("frequency", sa.Text, nullable=False, server_default="daily"),
    # HH:MM in the site's time zone.
    sa.Column("scheduled_time", sa.Text, nullable=False, server_default="02:00"),
    *(
        sa.Column(
            f"stage_{stage}_batch_size",
            sa.Integer,
            nullable=False,
            server_default=sa.text(str(size)),
        )
        for stage, size in DEFAULT_BATCH_SIZES.items()
    ),
    sa.Column("within_stage_delay", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("between_stage_delay", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("stage_concurrency", sa.Integer, nullable=False, server_default=sa.text("1")),
    # What the 1.2x start check covers: the work pending now (SPEC) or the projected total.
    sa.Column("start_check", sa.Text, nullable=False, server_default="pending"),
    # A run paused because credits ran out resumes by itself once the balance covers its next
    # item (the orchestrator's credit watch), unless this is off.
    sa.Column("resume_when_funded", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("last_run_at", sa.DateTime(timezone=True)),
    sa.Column("next_run_at", sa.DateTime(timezone=True)),
    _updated_at(),
    _one_of("frequency", FREQUENCIES),
    _one_of("start_check", START_CHECKS),
    sa.CheckConstraint(
        "scheduled_time ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'", name="scheduled_time_hh_mm"
    ),
    *(_between(f"stage_{stage}_batch_size", BATCH_SIZE_RANGE) for stage in DEFAULT_BATCH_SIZES),
    _between("within_stage_delay", DELAY_RANGE_SECONDS),
    _between("between_stage_delay", DELAY_RANGE_SECONDS),
    _between("stage_concurrency", CONCURRENCY_RANGE),
    # The hourly scheduler looks for enabled sites whose slot has come.
    sa.Index("ix_automation_configs_due", "next_run_at", postgresql_where=sa.text("is_enabled")),
)

credit_ledger = sa.Table(
    "credit_ledger",
    metadata,
    _id(),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("site_id", sa.BigInteger, sa.ForeignKey("sites.id", ondelete="SET NULL")),
    sa.Column("run_id", sa.Text),
    sa.Column("stage", sa.Integer),
    # Negative is a charge, positive a top-up.
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    # Derived from what is being paid for (run, stage, batch); a replayed charge collides here.
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    _created_at(),
    sa.CheckConstraint("stage BETWEEN 1 AND 7", name="stage"),
    sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    sa.Index("ix_credit_ledger_account_id_id", "account_id", "id"),
    sa.Index("ix_credit_ledger_run_id", "run_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    # Identity order is publish order.
    _id(),
    sa.Column("message_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("message_key", BYTEA),
    sa.Column("payload", JSONB, nullable=False),
    # Kafka headers as a list of [name, value] pairs.
    sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    _created_at(),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
)

processed_messages = sa.Table(
    "processed_messages",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column(
        "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
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
    _created_at(),
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
    _created_at(),
    sa.CheckConstraint("outcome IN ('processed', 'failed')", name="outcome"),
)

# How often an item of stages 1-5 failed, across runs: at the budget (contracts.db.pending) the
# stage stops picking it until an operator retries it. Images keep their own `failed` status.
item_failures = sa.Table(
    "item_failures",
    metadata,
    sa.Column("stage", sa.SmallInteger, primary_key=True),
    sa.Column("item_id", sa.BigInteger, primary_key=True),
    sa.Column(
        "site_id", sa.BigInteger, sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("last_run_id", sa.Text, nullable=False),
    _updated_at(),
    sa.Index("ix_item_failures_site_id", "site_id"),
)

# Whether a run may go on, as the workers learnt it from the run-events topic.
worker_run_status = sa.Table(
    "worker_run_status",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stopped", sa.Boolean, nullable=False),
    _updated_at(),
)

schedule_slots = sa.Table(
    "schedule_slots",
    metadata,
    sa.Column(
        "site_id",
        sa.BigInteger,
        sa.ForeignKey("sites.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("slot_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column(
        "claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# --- The run read model: written only by the log-sink, from the fold of the event stream. ---
# The gateway's current_run / history / current_processing read it; workers read a run's status
# between items so a pause or cancel takes effect after the item in flight.

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
    _updated_at(),
    _one_of("status", RUN_STATUSES),
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
    _updated_at(),
    _one_of("status", STAGE_STATUSES),
    sa.CheckConstraint("stage BETWEEN 1 AND 7", name="stage"),
)

# --- The orchestrator's snapshots of its fold, one per run-events topic and partition: a cache
# it rebuilds from the stream whenever it is missing or unreadable (docs/adr/0013). ---

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
    sa.Column(
        "written_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
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
    _updated_at(),
    _one_of("circuit", ("closed", "open", "probing")),
)

AI_CALL_OUTCOMES = ("answered", "rate_limited", "unavailable", "refused", "fatal")

ai_calls = sa.Table(
    "ai_calls",
    metadata,
    _id(),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
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
    _one_of("outcome", AI_CALL_OUTCOMES),
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
    _created_at(),
    sa.Index("ix_ai_answers_created_at", "created_at"),
)

# --- Webhooks (docs/adr/0019): endpoints and their secrets are written by the gateway's API,
# deliveries and their attempts by the gateway's webhooks process. ---

WEBHOOK_DELIVERY_STATUSES = ("pending", "delivered", "failed")
# `refused`: the address check stopped it before any connection (api_gateway.webhooks.addresses).
WEBHOOK_ATTEMPT_OUTCOMES = ("delivered", "failed", "refused")

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    _id(),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # The webhook types it wants (api_gateway.webhooks.payloads.WEBHOOK_TYPES; checked by the
    # API, not here, so a new type needs no migration).
    sa.Column("event_types", sa.ARRAY(sa.Text), nullable=False),
    # NULL: every site of the account, now and later.
    sa.Column("site_ids", sa.ARRAY(sa.BigInteger)),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    # Set by the first failed attempt after a success, cleared by a success: 5 days of it
    # disable the endpoint.
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    sa.CheckConstraint("cardinality(event_types) > 0", name="event_types_not_empty"),
    sa.CheckConstraint(
        "site_ids IS NULL OR cardinality(site_ids) > 0", name="site_ids_null_or_not_empty"
    ),
    sa.CheckConstraint("enabled OR disabled_reason IS NOT NULL", name="disabled_says_why"),
    sa.Index("ix_webhook_endpoints_account_id", "account_id"),
)

# Several per endpoint while a rotation overlaps: each signs from created_at until expires_at.
# Kept as they are, since signing needs them (API tokens, only ever checked, are hashed).
webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    _id(),
    sa.Column(
        "endpoint_id",
        sa.BigInteger,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("secret", sa.Text, nullable=False),
    _created_at(),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'", name="secret_is_whsec"),
    sa.Index("ix_webhook_secrets_endpoint_id", "endpoint_id"),
)

# One per endpoint and webhook event. The id is the `webhook-id`, derived from the endpoint and
# the event (api_gateway.webhooks.payloads.webhook_id): enqueueing an event again collides here.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.BigInteger,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("site_id", sa.BigInteger),
    sa.Column("run_id", sa.Text),
    # The exact bytes every attempt sends (and signs): `{type, timestamp, data}` as JSON text.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    # Attempts begun: a claim counts one, so an attempt whose process died still counts.
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    # A claimed delivery is leased to one attempt; past lease_until another may claim it, and
    # the first attempt's outcome (another lease_token) is then not recorded.
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("lease_token", sa.Uuid),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_latency_ms", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_response", sa.Text),
    _created_at(),
    _updated_at(),
    _one_of("status", WEBHOOK_DELIVERY_STATUSES),
    sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    sa.CheckConstraint(
        "(status = 'pending') = (next_attempt_at IS NOT NULL)", name="pending_has_next_attempt"
    ),
    # The delivery loop's claim: endpoints with due rows, then each one's rows in due order.
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_webhook_deliveries_endpoint_pending",
        "endpoint_id",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    # The delivery log of an endpoint, newest first.
    sa.Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    _id(),
    sa.Column(
        "delivery_id",
        sa.Uuid,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("status", sa.Integer),  # the HTTP status; NULL when no answer came
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("response", sa.Text),  # the first characters of the answer's body
    _one_of("outcome", WEBHOOK_ATTEMPT_OUTCOMES),
    sa.CheckConstraint("attempt >= 1", name="attempt_from_1"),
    sa.CheckConstraint("latency_ms >= 0", name="latency_ms_not_negative"),
    sa.Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),
)
