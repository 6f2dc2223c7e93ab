"""Alembic environment, online mode only.

`contracts.db.migrate` hands over an open connection in `config.attributes["connection"]` (it
holds the advisory lock on that session); other callers put a URL in
`config.attributes["database_url"]` or the `sqlalchemy.url` option.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from contracts.db.engines import sync_engine
from contracts.db.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: give a connection, a database_url or sqlalchemy.url")
    db = sync_engine(url, poolclass=sa.pool.NullPool)
    with db.connect() as connection:
        _run(connection)
    db.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
