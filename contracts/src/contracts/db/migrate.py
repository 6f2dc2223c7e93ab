"""Bring a database to the newest schema. Every service may call `upgrade` at start-up; by
hand, `stack migrate` does it for DATABASE_URL (or the local stack's database).

A database already at `HEAD` is left alone without loading alembic, which costs about 0.4 s of
CPU to import: services start far more often than the schema changes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from contracts.db.engines import sync_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed 64-bit number; every process migrating this database must use the same one.
MIGRATION_LOCK_KEY = 4_711_202_400_000_001
# The newest migration's revision; a new migration changes it (a unit test holds the two equal).
HEAD = "0014"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def head() -> str | None:
    """The newest revision the migrations know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to `revision`. A no-op when already there. Concurrent callers queue on a
    session-level advisory lock, so the second finds the work done instead of racing it."""
    db = sync_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as connection:
            if revision in ("head", HEAD) and _revision(connection) == HEAD:
                return
            connection.rollback()
            _upgrade_locked(connection, revision)
    finally:
        db.dispose()


def _upgrade_locked(connection: sa.Connection, revision: str) -> None:
    from alembic import command

    connection.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK_KEY)))
    connection.commit()
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    finally:
        # Closing the connection would release the lock too; unlocking says so.
        if not connection.invalidated:
            connection.rollback()
            connection.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK_KEY)))
            connection.commit()


def current(database_url: str) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    db = sync_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as connection:
            return _revision(connection)
    finally:
        db.dispose()


def _revision(connection: sa.Connection) -> str | None:
    """What alembic's version table says (one row: the history has no branches)."""
    if connection.scalar(sa.text("SELECT to_regclass('alembic_version')")) is None:
        return None
    return connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
