"""Webhooks (docs/adr/0019): endpoints per account, their secrets (several while a rotation
overlaps), one delivery per endpoint and webhook event, keyed by its `webhook-id`, and a row per
attempt.

Frozen like the revisions before it: it does not import `contracts.db.tables`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"

TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")
PENDING = sa.text("status = 'pending'")


def _id(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _endpoint_id(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f(f"fk_{table}_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        *_id("webhook_endpoints"),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("event_types", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("site_ids", sa.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", TIMESTAMPTZ, nullable=True),
        sa.Column("failing_since", TIMESTAMPTZ, nullable=True),
        sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "cardinality(event_types) > 0", name=op.f("ck_webhook_endpoints_event_types_not_empty")
        ),
        sa.CheckConstraint(
            "site_ids IS NULL OR cardinality(site_ids) > 0",
            name=op.f("ck_webhook_endpoints_site_ids_null_or_not_empty"),
        ),
        sa.CheckConstraint(
            "enabled OR disabled_reason IS NOT NULL",
            name=op.f("ck_webhook_endpoints_disabled_says_why"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_webhook_endpoints_account_id_accounts")
        ),
    )
    op.create_index("ix_webhook_endpoints_account_id", "webhook_endpoints", ["account_id"])

    op.create_table(
        "webhook_secrets",
        *_id("webhook_secrets"),
        *_endpoint_id("webhook_secrets"),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.Column("expires_at", TIMESTAMPTZ, nullable=True),
        sa.CheckConstraint(
            "secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'",
            name=op.f("ck_webhook_secrets_secret_is_whsec"),
        ),
    )
    op.create_index("ix_webhook_secrets_endpoint_id", "webhook_secrets", ["endpoint_id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        *_endpoint_id("webhook_deliveries"),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMPTZ, nullable=True),
        sa.Column("lease_until", TIMESTAMPTZ, nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("last_attempt_at", TIMESTAMPTZ, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_latency_ms", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_response", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_webhook_deliveries_attempts_not_negative")
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (next_attempt_at IS NOT NULL)",
            name=op.f("ck_webhook_deliveries_pending_has_next_attempt"),
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_pending",
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at"],
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_created_at",
        "webhook_deliveries",
        ["endpoint_id", "created_at"],
    )

    op.create_table(
        "webhook_attempts",
        *_id("webhook_attempts"),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMPTZ, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('delivered', 'failed', 'refused')",
            name=op.f("ck_webhook_attempts_outcome"),
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_webhook_attempts_attempt_from_1")),
        sa.CheckConstraint(
            "latency_ms >= 0", name=op.f("ck_webhook_attempts_latency_ms_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_webhook_attempts_delivery_id_id", "webhook_attempts", ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_secrets")
    op.drop_table("webhook_endpoints")
