"""Wiring, once: the Kafka consumer and producer, the database engines, the in-memory sites and
their snapshots, put together as the handlers' ports and the runner that drives them."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from sqlalchemy.engine import Engine

from contracts.db.engines import sync_engine
from contracts.state import RunState
from orchestrator import credit_watch, scheduler
from orchestrator.outputs import KafkaOutputs
from orchestrator.ports import Ports
from orchestrator.runner import Runner
from orchestrator.settings import Settings
from orchestrator.sites import Sites
from orchestrator.snapshots.keeper import Snapshotting


def bootstrap(settings: Settings) -> Runner:
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group_id,
        client_id=settings.instance_name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        # Partition p of both topics (keyed by site) lands on the same instance, which is then
        # the one writer for those sites.
        partition_assignment_strategy=(RangePartitionAssignor,),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.instance_name,
        enable_idempotence=True,
        acks="all",
    )
    outputs = KafkaOutputs(producer, topics.dead_letter)
    # The scheduler's and the credit watch's connections (both off the event path); an engine
    # connects on first use.
    database = sync_engine(settings.database_url, pool_pre_ping=True)
    sites = Sites()
    ports = Ports(
        topics=topics,
        group_id=settings.group_id,
        limits=settings.limits(),
        sites=sites,
        outputs=outputs,
        read_funds=lambda runs: _read_funds(database, runs),
        run_scheduler=lambda now, publish: scheduler.run_once(
            database, settings.scheduler_clock or now, settings.lookback_seconds, publish
        ),
    )
    snapshotting = Snapshotting.of(settings, topics.run_events, sites, outputs.settled)

    def close() -> None:
        snapshotting.close()
        database.dispose()

    return Runner(settings, ports, consumer, outputs, snapshotting, on_close=close)


def _read_funds(engine: Engine, runs: list[RunState]) -> dict[str, credit_watch.Funds]:
    with engine.connect() as conn:
        return credit_watch.read_funds(conn, runs)
