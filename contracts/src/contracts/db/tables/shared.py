"""Tables more than one service writes: the site's content, which the pipeline makes, and the
credit ledger.

Content (keywords → clusters → ideas → tasks → articles → images): the stage workers create the
rows and move their statuses; the gateway imports keywords and records a reviewer's edits and
verdicts on articles (and retries failed images). Credits: the stage workers charge, the gateway
tops up; each entry moves `accounts.credit_balance` in the same transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from contracts.db.tables.schema import (
    account_id,
    created_at,
    created_by_run_id,
    id_column,
    metadata,
    one_of,
    parent_id,
    site_id,
    site_status_index,
    updated_at,
)

KEYWORD_STATUSES = ("new", "mapped")
CLUSTER_STATUSES = ("new", "mapped")
IDEA_STATUSES = ("new", "queued")
TASK_STATUSES = ("queued", "completed")
CONTENT_STATUSES = ("draft", "review", "approved", "rejected")
IMAGE_KINDS = ("featured", "in_article")
IMAGE_STATUSES = ("pending", "generated", "failed")


clusters = sa.Table(
    "clusters",
    metadata,
    id_column(),
    site_id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False, server_default="new"),
    # Deterministic key of the keyword batch the cluster came from: a redelivered batch hits
    # the unique constraint instead of creating a second cluster.
    sa.Column("source_key", sa.Text, nullable=False),
    created_by_run_id(),
    created_at(),
    one_of("status", CLUSTER_STATUSES),
    sa.UniqueConstraint("site_id", "source_key"),
    site_status_index("clusters"),
)

keywords = sa.Table(
    "keywords",
    metadata,
    id_column(),
    site_id(),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("volume", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("difficulty", sa.Integer),  # null: not known (the import did not give one)
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.Text, nullable=False, server_default="new"),
    sa.Column("cluster_id", sa.BigInteger, sa.ForeignKey("clusters.id", ondelete="SET NULL")),
    created_at(),
    one_of("status", KEYWORD_STATUSES),
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
    id_column(),
    site_id(),
    parent_id("cluster_id", "clusters"),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("outline", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False, server_default="new"),
    # Ordinal within the cluster's ideas; with the unique constraint, a redelivered stage 2
    # batch cannot add the same idea twice.
    sa.Column("position", sa.Integer, nullable=False),
    created_by_run_id(),
    created_at(),
    one_of("status", IDEA_STATUSES),
    sa.CheckConstraint("position >= 0", name="position_not_negative"),
    sa.UniqueConstraint("cluster_id", "position"),
    site_status_index("content_ideas"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    id_column(),
    site_id(),
    parent_id("idea_id", "content_ideas", unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("brief", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    created_by_run_id(),
    created_at(),
    one_of("status", TASK_STATUSES),
    site_status_index("tasks"),
)

content = sa.Table(
    "content",
    metadata,
    id_column(),
    site_id(),
    parent_id("task_id", "tasks", unique=True),
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
    created_by_run_id(),
    created_at(),
    updated_at(),
    one_of("status", CONTENT_STATUSES),
    sa.CheckConstraint("word_count >= 0", name="word_count_not_negative"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    site_status_index("content"),
)

images = sa.Table(
    "images",
    metadata,
    id_column(),
    site_id(),
    parent_id("content_id", "content"),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("file_path", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("error", sa.Text),
    created_by_run_id(),
    created_at(),
    updated_at(),
    one_of("kind", IMAGE_KINDS),
    one_of("status", IMAGE_STATUSES),
    sa.CheckConstraint("position >= 0", name="position_not_negative"),
    sa.UniqueConstraint("content_id", "position"),
    site_status_index("images"),
)


credit_ledger = sa.Table(
    "credit_ledger",
    metadata,
    id_column(),
    account_id(),
    sa.Column("site_id", sa.BigInteger, sa.ForeignKey("sites.id", ondelete="SET NULL")),
    sa.Column("run_id", sa.Text),
    sa.Column("stage", sa.Integer),
    # Negative is a charge, positive a top-up.
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    # Derived from what is being paid for (run, stage, batch); a replayed charge collides here.
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    created_at(),
    sa.CheckConstraint("stage BETWEEN 1 AND 7", name="stage"),
    sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    sa.Index("ix_credit_ledger_account_id_id", "account_id", "id"),
    sa.Index("ix_credit_ledger_run_id", "run_id"),
)
