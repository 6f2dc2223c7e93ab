"""A site may have its start check cover the projected total instead of the pending work."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.add_column(
        "automation_configs",
        sa.Column("start_check", sa.Text(), server_default="pending", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_automation_configs_start_check"),
        "automation_configs",
        "start_check IN ('pending', 'projected')",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_automation_configs_start_check"), "automation_configs", type_="check"
    )
    op.drop_column("automation_configs", "start_check")
