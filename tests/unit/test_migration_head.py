"""`migrate.HEAD` lets a service starting on a migrated database skip alembic; it must name
the newest migration, or a database one migration behind would be taken as up to date."""

from contracts.db import migrate


def test_head_is_the_newest_migration():
    assert migrate.head() == migrate.HEAD
