"""Where the tests' Kafka and PostgreSQL come from when not from the local stack."""

from __future__ import annotations

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
