"""Log-sink settings, from the environment (or a .env file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from contracts.settings import ServiceSettings, default_log_dir

GROUP = "automation-log-sink"


class Settings(ServiceSettings):
    metrics_port: int = Field(9103, description="Port of the Prometheus metrics endpoint.")
    log_base_dir: Path = Field(
        default_factory=default_log_dir,
        description="Base folder of the per-run logs and traces; the gateway reads it too.",
    )
    log_mirror_dir: Path | None = Field(None, description="Optional second copy of run folders.")
    flush_interval_seconds: float = Field(
        0.1,
        gt=0,
        description=(
            "While the sink is behind the stream, how often it writes files and database; once "
            "it has read all there is, it writes at once."
        ),
    )
    retry_interval_seconds: float = Field(
        1.0, gt=0, description="How often writes that failed (disk, database) are tried again."
    )

    @property
    def group_id(self) -> str:
        return self.kafka_group_prefix + GROUP
