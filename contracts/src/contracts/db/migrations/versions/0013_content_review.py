"""Review for real: an article's edits (the AI's original kept, who and when, a version that
refuses a stale edit) and the reason a reviewer rejected it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"


def upgrade() -> None:
    op.add_column(
        "content", sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.add_column("content", sa.Column("original_title", sa.Text()))
    op.add_column("content", sa.Column("original_body", sa.Text()))
    op.add_column("content", sa.Column("edited_at", sa.DateTime(timezone=True)))
    op.add_column(
        "content",
        sa.Column(
            "edited_by",
            sa.BigInteger(),
            sa.ForeignKey("users.id", name="fk_content_edited_by_users", ondelete="SET NULL"),
        ),
    )
    op.add_column("content", sa.Column("reject_reason", sa.Text()))
    op.create_check_constraint("version_positive", "content", "version >= 1")


def downgrade() -> None:
    op.drop_constraint("ck_content_version_positive", "content", type_="check")
    for column in (
        "reject_reason",
        "edited_by",
        "edited_at",
        "original_body",
        "original_title",
        "version",
    ):
        op.drop_column("content", column)
