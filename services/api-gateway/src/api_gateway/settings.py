"""Gateway settings, from the environment (or a .env file)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_DATABASE_URL = "postgresql+psycopg://automation:automation@127.0.0.1:55432/automation"
LOCAL_KAFKA = "127.0.0.1:19092"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(LOCAL_DATABASE_URL, description="SQLAlchemy URL of PostgreSQL.")
    kafka_bootstrap_servers: str = Field(LOCAL_KAFKA, description="Kafka bootstrap servers.")
