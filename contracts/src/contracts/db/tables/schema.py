"""The one MetaData every table module declares into, and the column and constraint shapes they
share.

Statuses are text with a CHECK rather than PostgreSQL enums: changing the allowed set is then a
constraint swap in a migration, while an enum value cannot be removed at all, and a new one is not
usable in the transaction that adds it.
"""

from __future__ import annotations

from typing import Any

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


def timestamp(name: str, **options: Any) -> sa.Column:
    """A moment the database's clock fills in when the row is inserted (unless one is given)."""
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(), **options
    )


def created_at() -> sa.Column:
    return timestamp("created_at")


def updated_at() -> sa.Column:
    return timestamp("updated_at", onupdate=sa.func.now())


def parent_id(name: str, parent: str, type_: Any = sa.BigInteger, **options: Any) -> sa.Column:
    """The row's parent, by the parent's `id`: deleting the parent deletes the row. `options`
    are the column's own (unique, primary_key)."""
    return sa.Column(
        name,
        type_,
        sa.ForeignKey(f"{parent}.id", ondelete="CASCADE"),
        nullable=False,
        **options,
    )


def site_id(*, primary_key: bool = False) -> sa.Column:
    """The site the row belongs to; deleting the site deletes the row."""
    return parent_id("site_id", "sites", primary_key=primary_key)


def account_id() -> sa.Column:
    """The account the row belongs to (no ON DELETE: an account that has rows stays)."""
    return sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False)


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
