"""Initial schema: tenancy, content data, configs, credit ledger, outbox and idempotency records.

Frozen: it does not import `contracts.db.tables`, so later edits there cannot change what this
revision creates. Changes go into a new revision. CHECK names are wrapped in `op.f` because they
are final: alembic would otherwise apply the "ck" naming convention of the target metadata again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

revision: str = "0001"
down_revision: str | None = None

TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def _id(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def _created_at() -> sa.Column:
    return sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False)


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False)


def _site_id(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=f"fk_{table}_site_id_sites", ondelete="CASCADE"
        ),
    ]


def _status(table: str, default: str, values: tuple[str, ...]) -> list[sa.SchemaItem]:
    allowed = ", ".join(f"'{v}'" for v in values)
    return [
        sa.Column("status", sa.Text(), server_default=default, nullable=False),
        sa.CheckConstraint(f"status IN ({allowed})", name=op.f(f"ck_{table}_status")),
    ]


def _created_by_run_id() -> sa.Column:
    return sa.Column("created_by_run_id", sa.Text(), nullable=True)


def _site_status_index(table: str) -> None:
    op.create_index(f"ix_{table}_site_id_status", table, ["site_id", "status"])


def upgrade() -> None:
    op.create_table(
        "accounts",
        *_id("accounts"),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("credit_balance", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "credit_balance >= 0", name=op.f("ck_accounts_credit_balance_not_negative")
        ),
    )

    op.create_table(
        "users",
        *_id("users"),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_users_account_id_accounts"
        ),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("ix_users_account_id", "users", ["account_id"])

    op.create_table(
        "api_tokens",
        *_id("api_tokens"),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("token_prefix", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        _created_at(),
        sa.Column("last_used_at", TIMESTAMPTZ, nullable=True),
        sa.Column("revoked_at", TIMESTAMPTZ, nullable=True),
        sa.CheckConstraint(
            "token_hash ~ '^[0-9a-f]{64}$'", name=op.f("ck_api_tokens_token_hash_is_sha256_hex")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_api_tokens_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_account_id", "api_tokens", ["account_id"])
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "sites",
        *_id("sites"),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_sites_account_id_accounts"
        ),
    )
    op.create_index("ix_sites_account_id", "sites", ["account_id"])

    op.create_table(
        "clusters",
        *_id("clusters"),
        *_site_id("clusters"),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        *_status("clusters", "new", ("new", "mapped")),
        sa.Column("source_key", sa.Text(), nullable=False),
        _created_by_run_id(),
        _created_at(),
        sa.UniqueConstraint("site_id", "source_key", name="uq_clusters_site_id_source_key"),
    )
    _site_status_index("clusters")

    op.create_table(
        "keywords",
        *_id("keywords"),
        *_site_id("keywords"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("volume", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("difficulty", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_status("keywords", "new", ("new", "mapped")),
        sa.Column("cluster_id", sa.BigInteger(), nullable=True),
        _created_at(),
        sa.CheckConstraint("length(btrim(text)) > 0", name=op.f("ck_keywords_text_not_blank")),
        sa.CheckConstraint("volume >= 0", name=op.f("ck_keywords_volume_not_negative")),
        sa.CheckConstraint("difficulty >= 0", name=op.f("ck_keywords_difficulty_not_negative")),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name="fk_keywords_cluster_id_clusters",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "uq_keywords_site_id_lower_text",
        "keywords",
        ["site_id", sa.literal_column("lower(text)")],
        unique=True,
    )
    op.create_index(
        "ix_keywords_stage_1_pending",
        "keywords",
        ["site_id", "status"],
        postgresql_where=sa.text("cluster_id IS NULL AND NOT disabled"),
    )
    op.create_index("ix_keywords_cluster_id", "keywords", ["cluster_id"])

    op.create_table(
        "content_ideas",
        *_id("content_ideas"),
        *_site_id("content_ideas"),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("outline", sa.Text(), server_default="", nullable=False),
        *_status("content_ideas", "new", ("new", "queued")),
        sa.Column("position", sa.Integer(), nullable=False),
        _created_by_run_id(),
        _created_at(),
        sa.CheckConstraint("position >= 0", name=op.f("ck_content_ideas_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name="fk_content_ideas_cluster_id_clusters",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("cluster_id", "position", name="uq_content_ideas_cluster_id_position"),
    )
    _site_status_index("content_ideas")

    op.create_table(
        "tasks",
        *_id("tasks"),
        *_site_id("tasks"),
        sa.Column("idea_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("brief", sa.Text(), server_default="", nullable=False),
        *_status("tasks", "queued", ("queued", "completed")),
        _created_by_run_id(),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["idea_id"],
            ["content_ideas.id"],
            name="fk_tasks_idea_id_content_ideas",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("idea_id", name="uq_tasks_idea_id"),
    )
    _site_status_index("tasks")

    op.create_table(
        "content",
        *_id("content"),
        *_site_id("content"),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column("word_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        *_status("content", "draft", ("draft", "review", "approved", "rejected")),
        sa.Column("reviewed_at", TIMESTAMPTZ, nullable=True),
        sa.Column("reviewed_by", sa.BigInteger(), nullable=True),
        _created_by_run_id(),
        _created_at(),
        _updated_at(),
        sa.CheckConstraint("word_count >= 0", name=op.f("ck_content_word_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_content_task_id_tasks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["users.id"],
            name="fk_content_reviewed_by_users",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("task_id", name="uq_content_task_id"),
    )
    _site_status_index("content")

    op.create_table(
        "images",
        *_id("images"),
        *_site_id("images"),
        sa.Column("content_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        *_status("images", "pending", ("pending", "generated", "failed")),
        sa.Column("file_path", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _created_by_run_id(),
        _created_at(),
        _updated_at(),
        sa.CheckConstraint("kind IN ('featured', 'in_article')", name=op.f("ck_images_kind")),
        sa.CheckConstraint("position >= 0", name=op.f("ck_images_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["content_id"], ["content.id"], name="fk_images_content_id_content", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("content_id", "position", name="uq_images_content_id_position"),
    )
    _site_status_index("images")

    batch_sizes = {1: 20, 2: 1, 3: 20, 4: 1, 5: 1, 6: 1}
    op.create_table(
        "automation_configs",
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("frequency", sa.Text(), server_default="daily", nullable=False),
        sa.Column("scheduled_time", sa.Text(), server_default="02:00", nullable=False),
        *(
            sa.Column(
                f"stage_{stage}_batch_size",
                sa.Integer(),
                server_default=sa.text(str(size)),
                nullable=False,
            )
            for stage, size in batch_sizes.items()
        ),
        sa.Column("within_stage_delay", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("between_stage_delay", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("stage_concurrency", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("last_run_at", TIMESTAMPTZ, nullable=True),
        sa.Column("next_run_at", TIMESTAMPTZ, nullable=True),
        _updated_at(),
        sa.PrimaryKeyConstraint("site_id", name="pk_automation_configs"),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name="fk_automation_configs_site_id_sites",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "frequency IN ('daily', 'weekly', 'monthly')",
            name=op.f("ck_automation_configs_frequency"),
        ),
        sa.CheckConstraint(
            "scheduled_time ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'",
            name=op.f("ck_automation_configs_scheduled_time_hh_mm"),
        ),
        *(
            sa.CheckConstraint(
                f"stage_{stage}_batch_size BETWEEN 1 AND 500",
                name=op.f(f"ck_automation_configs_stage_{stage}_batch_size"),
            )
            for stage in batch_sizes
        ),
        sa.CheckConstraint(
            "within_stage_delay BETWEEN 0 AND 3600",
            name=op.f("ck_automation_configs_within_stage_delay"),
        ),
        sa.CheckConstraint(
            "between_stage_delay BETWEEN 0 AND 3600",
            name=op.f("ck_automation_configs_between_stage_delay"),
        ),
        sa.CheckConstraint(
            "stage_concurrency BETWEEN 1 AND 32",
            name=op.f("ck_automation_configs_stage_concurrency"),
        ),
    )
    op.create_index(
        "ix_automation_configs_due",
        "automation_configs",
        ["next_run_at"],
        postgresql_where=sa.text("is_enabled"),
    )

    op.create_table(
        "credit_ledger",
        *_id("credit_ledger"),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("stage", sa.Integer(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        _created_at(),
        sa.CheckConstraint("stage BETWEEN 1 AND 7", name=op.f("ck_credit_ledger_stage")),
        sa.CheckConstraint(
            "balance_after >= 0", name=op.f("ck_credit_ledger_balance_after_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_credit_ledger_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_credit_ledger_site_id_sites", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_credit_ledger_idempotency_key"),
    )
    op.create_index("ix_credit_ledger_account_id_id", "credit_ledger", ["account_id", "id"])
    op.create_index("ix_credit_ledger_run_id", "credit_ledger", ["run_id"])

    op.create_table(
        "outbox",
        *_id("outbox"),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("message_key", BYTEA(), nullable=True),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("headers", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        _created_at(),
        sa.Column("published_at", TIMESTAMPTZ, nullable=True),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
    )

    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_processed_messages"),
    )
    op.create_index("ix_processed_messages_processed_at", "processed_messages", ["processed_at"])

    op.create_table(
        "schedule_slots",
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("slot_at", TIMESTAMPTZ, nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("claimed_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("site_id", "slot_at", name="pk_schedule_slots"),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_schedule_slots_site_id_sites", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; children go before parents.
    for table in (
        "schedule_slots",
        "processed_messages",
        "outbox",
        "credit_ledger",
        "automation_configs",
        "images",
        "content",
        "tasks",
        "content_ideas",
        "keywords",
        "clusters",
        "sites",
        "api_tokens",
        "users",
        "accounts",
    ):
        op.drop_table(table)
