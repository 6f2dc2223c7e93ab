"""A keyword's difficulty may be unknown: an import that gives none stores null, not 0 (which
reads as "easiest"). Keywords imported before keep their 0; nothing tells a 0 that was given
from one that was not.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    op.alter_column(
        "keywords",
        "difficulty",
        existing_type=sa.Integer(),
        nullable=True,
        server_default=None,
        existing_server_default=sa.text("0"),
    )


def downgrade() -> None:
    op.execute("UPDATE keywords SET difficulty = 0 WHERE difficulty IS NULL")
    op.alter_column(
        "keywords",
        "difficulty",
        existing_type=sa.Integer(),
        nullable=False,
        server_default=sa.text("0"),
    )
