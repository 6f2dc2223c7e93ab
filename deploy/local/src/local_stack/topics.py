"""Creates the topics of contracts.topics that a cluster lacks, under a namespace if given."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contracts.topics import Topics, TopicSpec
from local_stack.processes import StackError, run_async

# As many replicas as the cluster has brokers, up to three (TOPIC_REPLICATION_FACTOR overrides);
# with three a write needs two replicas in sync, so one broker may be down without losing
# acknowledged data (docs/scaling.md).
MAX_REPLICATION_FACTOR = 3
MIN_IN_SYNC_REPLICAS = 2
CREATE_ATTEMPTS = 5


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def ensure_topics(bootstrap: str, topics: Topics) -> TopicReport:
    specs = topics.specs()
    return run_async(lambda: _ensure_topics(bootstrap, specs))


async def _ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...]) -> TopicReport:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        await admin.start()
        report = TopicReport()
        present = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in present]
        report.existing = [spec.name for spec in specs if spec.name in present]
        report.warnings = await _partition_mismatches(admin, specs, report.existing)
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            factor = replication_factor(brokers)
            report.created = await _create(admin, [_new_topic(s, factor) for s in missing])
        return report
    finally:
        await admin.close()


async def _partition_mismatches(
    admin: AIOKafkaAdminClient, specs: tuple[TopicSpec, ...], names: list[str]
) -> list[str]:
    if not names:
        return []
    wanted = {spec.name: spec.partitions for spec in specs}
    warnings = []
    for topic in await admin.describe_topics(names):
        actual = len(topic["partitions"])
        if actual != wanted[topic["topic"]]:
            warnings.append(
                f"topic {topic['topic']} has {actual} partitions, "
                f"contracts say {wanted[topic['topic']]} (left as it is)"
            )
    return warnings


async def _create(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> list[str]:
    """Creates the topics; returns those this call created (a concurrent creator may win some)."""
    pending = {topic.name: topic for topic in topics}
    created: list[str] = []
    for attempt in range(CREATE_ATTEMPTS):
        response = await admin.create_topics(list(pending.values()))
        retry_reasons = []
        for name, code, *message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                error = for_code(code)
                if not error.retriable:
                    raise StackError(f"creating topic {name} failed: {error.__name__} {message}")
                retry_reasons.append(f"{name}: {error.__name__}")
                continue
            pending.pop(name)
        if not pending:
            return created
        # A broker that has just started can still refuse with a retriable error.
        await asyncio.sleep(0.5 * (attempt + 1))
    raise StackError(f"could not create topics: {', '.join(retry_reasons)}")


def replication_factor(brokers: int) -> int:
    override = os.environ.get("TOPIC_REPLICATION_FACTOR")
    return int(override) if override else min(brokers, MAX_REPLICATION_FACTOR)


def _new_topic(spec: TopicSpec, factor: int) -> NewTopic:
    config = dict(spec.config)
    if factor > MIN_IN_SYNC_REPLICAS:
        config.setdefault("min.insync.replicas", str(MIN_IN_SYNC_REPLICAS))
    return NewTopic(
        name=spec.name,
        num_partitions=spec.partitions,
        replication_factor=factor,
        topic_configs=config,
    )
