"""What every service reads from the environment in the same way: where Kafka and PostgreSQL
are, the topic namespace and the consumer-group prefix. Each service's own Settings extends
ServiceSettings, so a service has one settings path for everything it reads.

The defaults are the local stack's (deploy/local), so a service started beside `make up` needs
no configuration at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topics import Topics

LOCAL_KAFKA_PORT = 19092
LOCAL_PG_PORT = 55432
LOCAL_DB_NAME = LOCAL_DB_USER = LOCAL_DB_PASSWORD = "automation"


def local_kafka(port: int = LOCAL_KAFKA_PORT) -> str:
    return f"127.0.0.1:{port}"


def local_database_url(port: int = LOCAL_PG_PORT, database: str = LOCAL_DB_NAME) -> str:
    credentials = f"{LOCAL_DB_USER}:{LOCAL_DB_PASSWORD}"
    return f"postgresql+psycopg://{credentials}@127.0.0.1:{port}/{database}"


def _is_workspace_root(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    return pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8")


def repo_root() -> Path:
    """The checkout's root (the uv workspace), found from this file in an editable install,
    else from the working directory; the working directory when neither is in one."""
    for start in (Path(__file__).resolve().parent, Path(os.getcwd()).resolve()):
        for directory in (start, *start.parents):
            if _is_workspace_root(directory):
                return directory
    return Path(os.getcwd()).resolve()


def var_dir() -> Path:
    """Where the local run keeps its data files (media, logs) by default."""
    return repo_root() / "var"


def default_media_dir() -> Path:
    """MEDIA_DIR's default: stage 6 writes image files there, the gateway serves them."""
    return var_dir() / "media"


def default_log_dir() -> Path:
    """LOG_BASE_DIR's default: the log-sink writes each run's logs there, the gateway reads them."""
    return var_dir() / "logs"


class ServiceSettings(BaseSettings):
    # Blank variables count as unset: `DATABASE_URL= service` means "use the local one".
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(local_kafka(), description="Kafka bootstrap servers.")
    database_url: str = Field(local_database_url(), description="SQLAlchemy URL of PostgreSQL.")
    topic_namespace: str = Field("", description="Prefix of every topic name.")
    kafka_group_prefix: str = Field("", description="Prefix of every consumer group id.")
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="An OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`: spans go there; "
        "unset, nothing is traced (contracts.tracing, ADR 20).",
    )

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)
