"""A stage of the run read model says when the AI provider holds its calls back: which provider
and model, why, and since when.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("waiting_provider", "waiting_model", "waiting_reason")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("automation_run_stages", sa.Column(name, sa.Text(), nullable=True))
    op.add_column(
        "automation_run_stages",
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for name in (*COLUMNS, "waiting_since"):
        op.drop_column("automation_run_stages", name)
