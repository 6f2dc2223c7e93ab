"""A stage of the run read model says when the AI provider holds its calls back: which provider
and model, why, and since when; each AI call records how long it waited at the gate; and each
AI lane holds the worker processes' shares of it; and the AI calls of units not yet written are
kept (ai_answers), so that a batch dispatched again never asks the provider twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"

COLUMNS = ("waiting_provider", "waiting_model", "waiting_reason")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("automation_run_stages", sa.Column(name, sa.Text(), nullable=True))
    op.add_column(
        "automation_run_stages",
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "ai_lanes",
        sa.Column(
            "shares",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "ai_calls",
        sa.Column("waited_ms", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )

    op.create_table(
        "ai_answers",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("function", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("held_until", sa.Float(), nullable=False),
        sa.Column("draft", postgresql.BYTEA(), nullable=True),
        sa.Column("records", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("written", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", "unit", "function", name=op.f("pk_ai_answers")),
    )
    op.create_index(op.f("ix_ai_answers_created_at"), "ai_answers", ["created_at"])


def downgrade() -> None:
    op.drop_table("ai_answers")
    op.drop_column("ai_calls", "waited_ms")
    op.drop_column("ai_lanes", "shares")
    for name in (*COLUMNS, "waiting_since"):
        op.drop_column("automation_run_stages", name)
