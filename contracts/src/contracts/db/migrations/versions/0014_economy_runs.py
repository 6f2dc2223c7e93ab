"""Economy runs: a site's AI mode, the provider batches of the stage workers, and how each AI call
reached the provider (with what the batch price saved); the read model shows the provider
batch a stage waits for.

Frozen like the revisions before it: it does not import `contracts.db.tables`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014"
down_revision: str | None = "0013"

TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")
AI_MODES = ("standard", "economy", "economy_when_scheduled")
ROUTES = ("call", "provider_batch")
STATUSES = (
    "preparing",
    "uploaded",
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
    "failed",
)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.add_column(
        "automation_configs",
        sa.Column("ai_mode", sa.Text(), server_default="standard", nullable=False),
    )
    op.create_check_constraint("ai_mode", "automation_configs", _one_of("ai_mode", AI_MODES))
    op.add_column("ai_calls", sa.Column("via", sa.Text(), server_default="call", nullable=False))
    op.add_column("ai_calls", sa.Column("saved_usd", sa.Numeric(14, 8)))
    op.create_check_constraint("via", "ai_calls", _one_of("via", ROUTES))
    op.create_table(
        "provider_batches",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("round", sa.SmallInteger(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("custom_ids", JSONB(), nullable=False),
        sa.Column("input_file_id", sa.Text()),
        sa.Column("provider_batch_id", sa.Text()),
        sa.Column("status", sa.Text(), server_default="preparing", nullable=False),
        sa.Column("completed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_file_id", sa.Text()),
        sa.Column("error_file_id", sa.Text()),
        sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.Column("ended_at", TIMESTAMPTZ),
        sa.CheckConstraint(_one_of("status", STATUSES), name=op.f("ck_provider_batches_status")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_provider_batches")),
    )
    op.create_index("ix_provider_batches_run_id_stage", "provider_batches", ["run_id", "stage"])
    op.add_column("automation_run_stages", sa.Column("provider_batch", JSONB()))
    op.add_column(
        "worker_run_status",
        sa.Column("ended", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("worker_run_status", "ended")
    op.drop_column("automation_run_stages", "provider_batch")
    op.drop_index("ix_provider_batches_run_id_stage", table_name="provider_batches")
    op.drop_table("provider_batches")
    op.drop_constraint("ck_ai_calls_via", "ai_calls", type_="check")
    op.drop_column("ai_calls", "saved_usd")
    op.drop_column("ai_calls", "via")
    op.drop_constraint("ck_automation_configs_ai_mode", "automation_configs", type_="check")
    op.drop_column("automation_configs", "ai_mode")
