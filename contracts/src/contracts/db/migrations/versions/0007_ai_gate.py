"""The AI gate's shared state per provider + model (+ key), and a record of every AI call."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    op.create_table(
        "ai_lanes",
        sa.Column("lane", sa.Text(), nullable=False),
        sa.Column("requests", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.Float(), nullable=False),
        sa.Column("cool_until", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("cool_since", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("circuit", sa.Text(), server_default="closed", nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("probe_at", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("probe_until", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("backoff", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "circuit IN ('closed', 'open', 'probing')", name=op.f("ck_ai_lanes_circuit")
        ),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_ai_lanes")),
    )
    op.create_table(
        "ai_calls",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("items", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("function", sa.Text(), nullable=False),
        sa.Column("model_requested", sa.Text(), nullable=False),
        sa.Column("model_answered", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("images", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("image_size", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(14, 8), nullable=True),
        sa.Column("price_version", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('answered', 'rate_limited', 'unavailable', 'refused', 'fatal')",
            name=op.f("ck_ai_calls_outcome"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_calls")),
    )
    op.create_index("ix_ai_calls_run_id", "ai_calls", ["run_id"])
    op.create_index("ix_ai_calls_site_id_at", "ai_calls", ["site_id", "at"])
    op.create_index("ix_ai_calls_account_id_at", "ai_calls", ["account_id", "at"])


def downgrade() -> None:
    op.drop_table("ai_calls")
    op.drop_table("ai_lanes")
