"""The orchestrator's settings, from the environment (docs/runtime.md names)."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from pydantic import Field

from contracts.settings import ServiceSettings
from orchestrator.decide import Limits

SERVICE = "automation-orchestrator"


def _instance_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(ServiceSettings):
    metrics_port: int = 9101
    lease_seconds: float = Field(120, gt=0, description="How long a dispatched batch may take.")
    tick_seconds: float = Field(0.5, gt=0, description="How often active runs are re-checked.")
    start_stage_retry_seconds: float = Field(30, gt=0)
    scheduler_enabled: bool = True
    credit_check_seconds: float = Field(
        15, gt=0, description="How often runs paused for credits are checked for a top-up."
    )
    scheduler_interval_seconds: float = Field(3600, gt=0)
    scheduler_lookback_seconds: float | None = Field(
        None, gt=0, description="Oldest slot still started; default one scheduler interval."
    )
    scheduler_clock: datetime | None = Field(
        None,
        description="Run the scheduler as if it were always this moment (UTC): for trying a "
        "site's schedule without waiting for its slot. Unset in production.",
    )
    snapshots_enabled: bool = Field(
        True, description="Load and write snapshots of the fold (docs/adr/0013)."
    )
    snapshot_every_events: int = Field(
        2000, ge=0, description="Snapshot a partition after this many events (0: by time only)."
    )
    snapshot_every_seconds: float = Field(
        30, gt=0, description="Snapshot a partition this long after its last if events came."
    )
    snapshot_load_timeout_seconds: float = Field(
        10, gt=0, description="Fold from the beginning if the snapshots take longer to load."
    )
    instance_name: str = Field(default_factory=_instance_name)

    @property
    def group_id(self) -> str:
        return f"{self.kafka_group_prefix}{SERVICE}"

    @property
    def lookback_seconds(self) -> float:
        return self.scheduler_lookback_seconds or self.scheduler_interval_seconds

    def limits(self) -> Limits:
        return Limits(
            lease_seconds=self.lease_seconds,
            start_stage_retry_seconds=self.start_stage_retry_seconds,
        )
