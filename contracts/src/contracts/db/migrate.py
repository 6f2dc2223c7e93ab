"""Bring a database to the newest schema. Every service may call `upgrade` at start-up; by
hand, `stack migrate` does it for DATABASE_URL (or the local stack's database)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from contracts.db.engines import sync_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed 64-bit number; every process migrating this database must use the same one.
MIGRATION_LOCK_KEY = 4_711_202_400_000_001


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def head() -> str | None:
    """The newest revision the migrations know."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to `revision`. A no-op when already there. Concurrent callers queue on a
    session-level advisory lock, so the second finds the work done instead of racing it."""
    db = sync_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as connection:
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
    finally:
        db.dispose()


def current(database_url: str) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    db = sync_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with db.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        db.dispose()
