"""Log-sink settings, from the environment (or a .env file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_DATABASE_URL = "postgresql+psycopg://automation:automation@127.0.0.1:55432/automation"
LOCAL_KAFKA = "127.0.0.1:19092"
GROUP = "automation-log-sink"


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "uv.lock").exists():
            return folder
    return Path.cwd()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = Field(LOCAL_KAFKA, description="Kafka bootstrap servers.")
    database_url: str = Field(LOCAL_DATABASE_URL, description="SQLAlchemy URL of PostgreSQL.")
    kafka_group_prefix: str = Field("", description="Prefix of every consumer group id.")
    metrics_port: int = Field(9103, description="Port of the Prometheus metrics endpoint.")
    log_base_dir: Path = Field(
        default_factory=lambda: _repo_root() / "var" / "logs",
        description="Base folder of the per-run logs and traces; the gateway reads it too.",
    )
    log_mirror_dir: Path | None = Field(None, description="Optional second copy of run folders.")
    flush_interval_seconds: float = Field(
        0.1, gt=0, description="Longest wait before consumed events reach files and database."
    )
    retry_interval_seconds: float = Field(
        1.0, gt=0, description="How often writes that failed (disk, database) are tried again."
    )

    @property
    def group_id(self) -> str:
        return self.kafka_group_prefix + GROUP
