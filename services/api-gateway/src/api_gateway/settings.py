"""Gateway settings, from the environment (or a .env file)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_DATABASE_URL = "postgresql+psycopg://automation:automation@127.0.0.1:55432/automation"
LOCAL_KAFKA = "127.0.0.1:19092"
REPO_ROOT = Path(__file__).resolve().parents[4]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(LOCAL_DATABASE_URL, description="SQLAlchemy URL of PostgreSQL.")
    kafka_bootstrap_servers: str = Field(LOCAL_KAFKA, description="Kafka bootstrap servers.")
    topic_namespace: str = Field("", description="Prefix of every topic name.")
    kafka_group_prefix: str = Field("", description="Prefix of every consumer group id.")
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("GATEWAY_HOST", "HTTP_HOST"))
    http_port: int = Field(8000, validation_alias=AliasChoices("GATEWAY_PORT", "HTTP_PORT"))
    metrics_port: int | None = Field(
        None, description="Also serve /metrics on this port (the gateway's HTTP port always does)."
    )
    media_dir: Path = REPO_ROOT / "var" / "media"
    log_base_dir: Path = REPO_ROOT / "var" / "logs"
    outcome_timeout_seconds: float = Field(
        15.0, description="How long a run command waits for the orchestrator's answer."
    )
    session_secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        description="Signs console session cookies; set the same value on every gateway "
        "instance (a random one per process otherwise, so a restart signs everyone out).",
    )
    session_hours: float = Field(12.0, gt=0, description="How long a console session lasts.")
