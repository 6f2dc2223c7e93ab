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
from local_stack.processes import port_is_free
from local_stack.settings import StackSettings
from tests.support.services import free_port
from tests.support.wait import wait_until


def free_port_block(size: int) -> int:
    """The first of `size` free ports in a row: each node takes a client and a controller port."""

    def block() -> int | None:
        ports = range(first := free_port(), first + size)
        return first if ports[-1] < 65536 and all(map(port_is_free, ports)) else None

    return wait_until(block, what=f"{size} free ports in a row")


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
        STACK_KAFKA_PORT=free_port_block(2 * brokers),
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
