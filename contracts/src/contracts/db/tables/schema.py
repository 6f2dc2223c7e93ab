"""The one MetaData every table module declares into, and the column and constraint shapes they
share.

Statuses are text with a CHECK rather than PostgreSQL enums: changing the allowed set is then a
constraint swap in a migration, while an enum value cannot be removed at all, and a new one is not
usable in the transaction that adds it.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)


def id_column() -> sa.Column:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def updated_at() -> sa.Column:
    return sa.Column(
        "updated_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
        onupdate=sa.func.now(),
    )


def site_id(*, primary_key: bool = False) -> sa.Column:
    """The site the row belongs to; deleting the site deletes the row."""
    return sa.Column(
        "site_id",
        sa.BigInteger,
        sa.ForeignKey("sites.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def created_by_run_id() -> sa.Column:
    """The run that made the row: traceability, and lets a retried batch find its own output."""
    return sa.Column("created_by_run_id", sa.Text)


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name or column)


def between(column: str, bounds: tuple[int, int]) -> sa.CheckConstraint:
    low, high = bounds
    return sa.CheckConstraint(f"{column} BETWEEN {low} AND {high}", name=column)


def site_status_index(table: str) -> sa.Index:
    return sa.Index(f"ix_{table}_site_id_status", "site_id", "status")
