"""A local stack of a test's own, in a temporary home on free ports, for tests that kill or
restart the infrastructure: the session's broker and database stay up for every other test
running beside them."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local_stack import stack
from local_stack.settings import StackSettings
from tests.support.services import free_port


@contextmanager
def private_stack(brokers: int = 1, database_url: str | None = None) -> Iterator[StackSettings]:
    """Kafka (one broker, or a cluster of three) with every contract topic, and PostgreSQL
    migrated, unless `database_url` names a database to use instead; all of it stopped and
    deleted afterwards. Its home is under /var/tmp: PostgreSQL runs as the `postgres` user,
    who cannot enter pytest's temporary directories."""
    home = Path(tempfile.mkdtemp(prefix="automation-test-stack-", dir="/var/tmp"))
    home.chmod(0o755)
    settings = StackSettings(
        STACK_HOME=home,
        STACK_BROKERS=brokers,
        STACK_KAFKA_PORT=free_port(2 * brokers),  # a client and a controller port each
        STACK_PG_PORT=free_port(),
        STACK_KAFKA_READY_TIMEOUT=180,
        KAFKA_BOOTSTRAP_SERVERS=None,  # this stack's, whatever the session uses
        DATABASE_URL=database_url,
        TOPIC_NAMESPACE=f"p{uuid.uuid4().hex[:10]}.",
    )
    try:
        stack.ensure_up(settings)
        yield settings
    finally:
        stack.reset(settings)
