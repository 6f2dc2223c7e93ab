"""The stage workers' own state: what each stage picked, what became of each item, and whether
a run may go on (learnt from the run-events topic).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"

TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "stage_picks",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("item_ids", sa.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "stage", name=op.f("pk_stage_picks")),
    )
    op.create_table(
        "stage_item_results",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("credits", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("outputs", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('processed', 'failed')", name=op.f("ck_stage_item_results_outcome")
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", "item_id", name=op.f("pk_stage_item_results")),
    )
    op.create_table(
        "worker_run_status",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_worker_run_status")),
    )


def downgrade() -> None:
    op.drop_table("worker_run_status")
    op.drop_table("stage_item_results")
    op.drop_table("stage_picks")
