"""Where the local stack lives and which ports it uses, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_DB = "automation"
APP_USER = "automation"
APP_PASSWORD = "automation"
HOME_MARKER = ".content-automation-stack"


class StackSettings(BaseSettings):
    # Blank variables count as unset: `DATABASE_URL= stack up` means "use the local one".
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    stack_home: Path | None = Field(default=None, validation_alias="STACK_HOME")
    kafka_port: int = Field(default=19092, validation_alias="STACK_KAFKA_PORT")
    pg_port: int = Field(default=55432, validation_alias="STACK_PG_PORT")
    kafka_ready_timeout_s: float = Field(default=60.0, validation_alias="STACK_KAFKA_READY_TIMEOUT")
    pg_ready_timeout_s: float = Field(default=60.0, validation_alias="STACK_PG_READY_TIMEOUT")
    external_kafka: str | None = Field(default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    external_database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    xdg_cache_home: Path | None = Field(default=None, validation_alias="XDG_CACHE_HOME")

    @property
    def controller_port(self) -> int:
        return self.kafka_port + 1

    @property
    def local_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def local_database_url(self) -> str:
        return f"postgresql+psycopg://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.pg_port}/{APP_DB}"

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


def _is_workspace_root(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    return pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8")


def repo_root() -> Path:
    """The uv workspace root: found from this file (editable install), else from the cwd."""
    for start in (Path(__file__).resolve().parent, Path(os.getcwd()).resolve()):
        for directory in (start, *start.parents):
            if _is_workspace_root(directory):
                return directory
    return Path(os.getcwd()).resolve()
