"""Where the local stack lives and which ports it uses, from the environment.

Kafka node n (1, or 1 to 3 with STACK_BROKERS=3) listens for clients on STACK_KAFKA_PORT + 2(n-1)
and for its controller quorum on the port after that: 19092/19093, 19094/19095, 19096/19097.
Node 1 lives in <home>/kafka, where the single broker always has; nodes 2 and 3 beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.settings import (
    LOCAL_KAFKA_PORT,
    LOCAL_PG_PORT,
    local_database_url,
    local_kafka,
    repo_root,
)
from contracts.topics import Topics
from local_stack.processes import StackError

HOME_MARKER = ".content-automation-stack"
BROKER_COUNTS = (1, 3)
ALL_NODES = range(1, max(BROKER_COUNTS) + 1)


class StackSettings(BaseSettings):
    # Blank variables count as unset: `DATABASE_URL= stack up` means "use the local one".
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    stack_home: Path | None = Field(default=None, validation_alias="STACK_HOME")
    kafka_port: int = Field(default=LOCAL_KAFKA_PORT, validation_alias="STACK_KAFKA_PORT")
    brokers: int = Field(default=1, validation_alias="STACK_BROKERS")
    pg_port: int = Field(default=LOCAL_PG_PORT, validation_alias="STACK_PG_PORT")
    # Three brokers starting at once on a busy two-core machine have taken close to a minute.
    kafka_ready_timeout_s: float = Field(120.0, validation_alias="STACK_KAFKA_READY_TIMEOUT")
    pg_ready_timeout_s: float = Field(default=60.0, validation_alias="STACK_PG_READY_TIMEOUT")
    external_kafka: str | None = Field(default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    external_database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    xdg_cache_home: Path | None = Field(default=None, validation_alias="XDG_CACHE_HOME")
    topic_namespace: str = Field(default="", validation_alias="TOPIC_NAMESPACE")
    # Where the broker's locked jars are fetched from (local_stack.kafka_jars).
    maven_repository: str = Field(
        default="https://repo.maven.apache.org/maven2", validation_alias="STACK_MAVEN_REPOSITORY"
    )

    @field_validator("brokers")
    @classmethod
    def _one_or_three(cls, brokers: int) -> int:
        if brokers not in BROKER_COUNTS:
            raise StackError(
                f"STACK_BROKERS={brokers}: the local stack runs 1 broker, or a cluster of 3"
            )
        return brokers

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)

    @property
    def nodes(self) -> range:
        return range(1, self.brokers + 1)

    def broker_port(self, node: int = 1) -> int:
        return self.kafka_port + 2 * (node - 1)

    def controller_port(self, node: int = 1) -> int:
        return self.broker_port(node) + 1

    def node_bootstrap(self, node: int) -> str:
        return local_kafka(self.broker_port(node))

    @property
    def local_bootstrap(self) -> str:
        return ",".join(self.node_bootstrap(node) for node in self.nodes)

    @property
    def local_database_url(self) -> str:
        return local_database_url(self.pg_port)

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or self.local_bootstrap

    @property
    def database_url(self) -> str:
        return self.external_database_url or self.local_database_url

    @property
    def cache_dir(self) -> Path:
        base = self.xdg_cache_home or Path.home() / ".cache"
        return base / "content-automation"

    @property
    def paths(self) -> StackPaths:
        return StackPaths(home=(self.stack_home or repo_root() / ".stack").resolve())


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def marker(self) -> Path:
        return self.home / HOME_MARKER

    @property
    def lock(self) -> Path:
        return self.home / ".lock"

    def broker(self, node: int) -> BrokerPaths:
        return BrokerPaths(self.home / ("kafka" if node == 1 else f"kafka-{node}"))

    @property
    def broker_count(self) -> Path:
        """How many brokers this home's Kafka storage was formatted for."""
        return self.broker(1).dir / "brokers"

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_dir / "run"


@dataclass(frozen=True)
class BrokerPaths:
    dir: Path

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def config(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.dir / "log4j2.properties"

    @property
    def pid(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def log(self) -> Path:
        return self.dir / "kafka.log"

    @property
    def console_log(self) -> Path:
        return self.dir / "kafka.out"
