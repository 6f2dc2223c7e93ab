"""Where the local stack lives and which ports it uses, from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.settings import (
    LOCAL_KAFKA_PORT,
    LOCAL_PG_PORT,
    local_database_url,
    local_kafka,
    repo_root,
)
from contracts.topics import Topics

HOME_MARKER = ".content-automation-stack"


class StackSettings(BaseSettings):
    # Blank variables count as unset: `DATABASE_URL= stack up` means "use the local one".
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    stack_home: Path | None = Field(default=None, validation_alias="STACK_HOME")
    kafka_port: int = Field(default=LOCAL_KAFKA_PORT, validation_alias="STACK_KAFKA_PORT")
    pg_port: int = Field(default=LOCAL_PG_PORT, validation_alias="STACK_PG_PORT")
    kafka_ready_timeout_s: float = Field(default=60.0, validation_alias="STACK_KAFKA_READY_TIMEOUT")
    pg_ready_timeout_s: float = Field(default=60.0, validation_alias="STACK_PG_READY_TIMEOUT")
    external_kafka: str | None = Field(default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    external_database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    xdg_cache_home: Path | None = Field(default=None, validation_alias="XDG_CACHE_HOME")
    topic_namespace: str = Field(default="", validation_alias="TOPIC_NAMESPACE")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)

    @property
    def controller_port(self) -> int:
        return self.kafka_port + 1

    @property
    def local_bootstrap(self) -> str:
        return local_kafka(self.kafka_port)

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

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_config(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log4j_config(self) -> Path:
        return self.kafka_dir / "log4j2.properties"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "kafka.log"

    @property
    def kafka_console_log(self) -> Path:
        return self.kafka_dir / "kafka.out"

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
