"""Live streams read a run's events from the topic rather than from a copy in memory: the run
read model says where on the events topic a run begins (partition and offset of its first
event). Signing out of the console ends the session for good (console_sign_outs), not only in
the browser that signed out, so streams opened with it can be ended too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"


def upgrade() -> None:
    op.add_column("automation_runs", sa.Column("stream_partition", sa.Integer(), nullable=True))
    op.add_column("automation_runs", sa.Column("first_offset", sa.BigInteger(), nullable=True))
    op.create_table(
        "console_sign_outs",
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_console_sign_outs")),
    )
    op.create_index(op.f("ix_console_sign_outs_expires_at"), "console_sign_outs", ["expires_at"])


def downgrade() -> None:
    op.drop_table("console_sign_outs")
    op.drop_column("automation_runs", "first_offset")
    op.drop_column("automation_runs", "stream_partition")
