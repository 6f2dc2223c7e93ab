"""The run read model: one row per run and one per run stage, written by the log-sink."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"

TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")
ZERO = sa.text("0")
EMPTY_LIST = sa.text("'[]'::jsonb")
RUN_STATUSES = "'running', 'paused', 'completed', 'cancelled', 'failed', 'rejected'"
STAGE_STATUSES = "'pending', 'running', 'completed', 'failed'"


def upgrade() -> None:
    op.create_table(
        "automation_runs",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("current_stage", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("credits_used", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("estimate", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("started_at", TIMESTAMPTZ, nullable=True),
        sa.Column("paused_at", TIMESTAMPTZ, nullable=True),
        sa.Column("resumed_at", TIMESTAMPTZ, nullable=True),
        sa.Column("cancelled_at", TIMESTAMPTZ, nullable=True),
        sa.Column("ended_at", TIMESTAMPTZ, nullable=True),
        sa.Column("last_event_at", TIMESTAMPTZ, nullable=True),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(f"status IN ({RUN_STATUSES})", name=op.f("ck_automation_runs_status")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_automation_runs")),
    )
    op.create_index(
        "ix_automation_runs_site_id_started_at", "automation_runs", ["site_id", "started_at"]
    )
    op.create_index("ix_automation_runs_account_id", "automation_runs", ["account_id"])
    op.create_table(
        "automation_run_stages",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("total_items", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("processed_items", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("failed_items", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("items_out", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("credits_used", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("started_at", TIMESTAMPTZ, nullable=True),
        sa.Column("finished_at", TIMESTAMPTZ, nullable=True),
        sa.Column("partial", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("currently_processing", JSONB(), server_default=EMPTY_LIST, nullable=False),
        sa.Column("up_next", JSONB(), server_default=EMPTY_LIST, nullable=False),
        sa.Column("remaining_count", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(
            f"status IN ({STAGE_STATUSES})", name=op.f("ck_automation_run_stages_status")
        ),
        sa.CheckConstraint("stage BETWEEN 1 AND 7", name=op.f("ck_automation_run_stages_stage")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["automation_runs.run_id"],
            name=op.f("fk_automation_run_stages_run_id_automation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", name=op.f("pk_automation_run_stages")),
    )


def downgrade() -> None:
    op.drop_table("automation_run_stages")
    op.drop_index("ix_automation_runs_account_id", table_name="automation_runs")
    op.drop_index("ix_automation_runs_site_id_started_at", table_name="automation_runs")
    op.drop_table("automation_runs")
