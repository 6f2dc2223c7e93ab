"""A site says whether its runs paused for credits resume by themselves once the balance covers
the next item (default: they do).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"


def upgrade() -> None:
    op.add_column(
        "automation_configs",
        sa.Column("resume_when_funded", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("automation_configs", "resume_when_funded")
