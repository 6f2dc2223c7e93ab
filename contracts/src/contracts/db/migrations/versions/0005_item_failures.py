"""Failed items of stages 1-5 are counted across runs, so a stage stops picking one that keeps
failing until an operator retries it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.create_table(
        "item_failures",
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_run_id", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_item_failures_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stage", "item_id", name=op.f("pk_item_failures")),
    )
    op.create_index(op.f("ix_item_failures_site_id"), "item_failures", ["site_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_item_failures_site_id"), table_name="item_failures")
    op.drop_table("item_failures")
