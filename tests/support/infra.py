"""Where the tests' Kafka and PostgreSQL come from, and who stops them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str


@dataclass
class Containers:
    kafka: Any
    postgres: Any
    kafka_bootstrap: str
    database_url: str

    def stop(self) -> None:
        self.kafka.stop()
        self.postgres.stop()


def from_testcontainers() -> Containers:
    """Kafka and PostgreSQL in containers, for machines where a Docker engine answers."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft().start()
    postgres = PostgresContainer("postgres:15", driver="psycopg").start()
    return Containers(kafka, postgres, kafka.get_bootstrap_server(), postgres.get_connection_url())


@dataclass(frozen=True)
class Infrastructure:
    endpoints: Endpoints
    stop: Callable[[], None]  # what this session started, stopped again (a no-op otherwise)


# On the local stack the tests use a database of their own: a demo's services, left running on
# the same PostgreSQL, claim the due webhook deliveries and start the scheduled runs of every
# account in theirs.
TEST_DATABASE = "automation_tests"


def bring_up() -> Infrastructure:
    """Kafka and PostgreSQL for a test session: from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL,
    from testcontainers when TEST_STACK=testcontainers, or from the local stack, started when it
    is not already up (and stopped again at the end unless KEEP_STACK is set), with the tests'
    own database (TEST_DATABASE) beside the app's."""
    from local_stack import stack as local_stack

    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL")
    if os.environ.get("TEST_STACK") == "testcontainers" and not given:
        containers = from_testcontainers()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = containers.kafka_bootstrap
        os.environ["DATABASE_URL"] = containers.database_url
        up = local_stack.ensure_up()
        return Infrastructure(Endpoints(up.kafka_bootstrap, up.database_url), containers.stop)
    up = local_stack.ensure_up(database=TEST_DATABASE)
    ours = up.started and not os.environ.get("KEEP_STACK")
    stop = local_stack.down if ours else _nothing
    return Infrastructure(Endpoints(up.kafka_bootstrap, up.database_url), stop)


def hand_to_workers(endpoints: Endpoints) -> None:
    """Parallel workers (pytest-xdist) start after the controller and inherit its environment:
    with these set they use the controller's infrastructure and never start or stop their own."""
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = endpoints.kafka_bootstrap
    os.environ["DATABASE_URL"] = endpoints.database_url


def _nothing() -> None:
    pass
