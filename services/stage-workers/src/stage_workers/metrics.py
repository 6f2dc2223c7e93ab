"""Process metrics: readiness, and what the batches did. No per-site or per-run labels."""

from __future__ import annotations

from aiokafka import ConsumerRebalanceListener
from prometheus_client import Gauge

READY = Gauge("automation_service_ready", "1 once every stage consumer has its partitions")


class Readiness:
    """Ready when every subscriber has been through one partition assignment (possibly empty:
    more workers than partitions is a valid deployment)."""

    def __init__(self, stages: list[int]) -> None:
        self.waiting = set(stages)
        READY.set(0)

    def listener(self, stage: int) -> ConsumerRebalanceListener:
        readiness = self

        class Assigned(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: object) -> None:
                pass

            async def on_partitions_assigned(self, assigned: object) -> None:
                readiness.assigned(stage)

        return Assigned()

    def assigned(self, stage: int) -> None:
        self.waiting.discard(stage)
        if not self.waiting:
            READY.set(1)
