"""A whole run on a Kafka cluster of three brokers (the local stack with STACK_BROKERS=3) whose
topics have replication factor 3 and min ISR 2: one broker is killed with SIGKILL in the middle
of stage 4, and the run still completes with every output once and every credit charged once.

The cluster is this module's own, in a temporary stack home on free ports; PostgreSQL is the
session's."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from contracts import events as ev
from contracts.envelope import Envelope
from contracts.topics import Topics
from contracts.values import RunConfig
from local_stack import kafka, stack
from local_stack.processes import is_alive
from local_stack.settings import StackSettings
from tests.support.kafka import describe_topics, topic_configs
from tests.support.outcomes import assert_whole_and_unique, expected_credits
from tests.support.pipeline import Pipeline, charged, counts, new_site
from tests.support.private_stack import private_stack
from tests.support.services import Services, service_env
from tests.support.wait import wait_until

BROKERS = 3
FAST = {"LEASE_SECONDS": "15", "TICK_SECONDS": "0.2"}
WORKERS = {"OFFLINE_LATENCY_MS": "150"}


@pytest.fixture(scope="module")
def cluster(database_url) -> Iterator[StackSettings]:
    """Three brokers of this module's own; PostgreSQL is the session's."""
    with private_stack(BROKERS, database_url) as cluster:
        yield cluster


@pytest.fixture
def cluster_services(cluster, tmp_path_factory) -> Iterator[Services]:
    run_dir = tmp_path_factory.mktemp("cluster-services")
    env = service_env(cluster.kafka_bootstrap, cluster.database_url, cluster.topics, run_dir)
    running = Services(base_env=env, log_dir=run_dir / "service-logs")
    yield running
    running.stop_all()


async def test_the_topics_are_replicated_three_times_with_two_in_sync(cluster):
    names = [spec.name for spec in cluster.topics.specs()]
    for topic in await describe_topics(cluster.kafka_bootstrap, names):
        for partition in topic["partitions"]:
            assert len(partition["replicas"]) == len(partition["isr"]) == BROKERS, topic["topic"]
        configs = await topic_configs(cluster.kafka_bootstrap, topic["topic"])
        assert configs["min.insync.replicas"] == "2", topic["topic"]


async def test_a_broker_killed_mid_run_neither_loses_nor_doubles_anything(
    cluster, db, cluster_services
):
    bootstrap, topics = cluster.kafka_bootstrap, cluster.topics
    pipeline = Pipeline(bootstrap, topics)
    cluster_services.start("orchestrator", "orchestrator", env=FAST)
    cluster_services.start("workers", "stage-worker", env=WORKERS)
    [offsets] = await describe_topics(bootstrap, ["__consumer_offsets"])
    assert {len(partition["replicas"]) for partition in offsets["partitions"]} == {BROKERS}
    site = new_site(db, 20, 10_000)
    run_id = await pipeline.start(site, config=RunConfig(stage_concurrency=2))
    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 1)

    victim = await busiest_broker(bootstrap, topics)
    killed_at, killed_at_utc = time.monotonic(), datetime.now(UTC)
    kill_broker(cluster, victim)
    state = await pipeline.finished(run_id, timeout=300)
    completed_after = time.monotonic() - killed_at

    made = counts(db, site.site_id)
    assert state.status == "completed", state.error
    assert_whole_and_unique(db, site.site_id, made)
    assert made["content_in_review"] == made["content"]
    assert charged(db, site.account_id) == expected_credits(20, made) == state.credits_used
    events = await pipeline.events(run_id)
    print(f"\nbroker {victim} killed; the run completed {completed_after:.1f} s later; "
          f"{recovery(events, killed_at_utc)}")  # fmt: skip

    stack.ensure_up(cluster)  # `stack up` again starts the killed broker alone; it rejoins
    assert all(component.answering for component in stack.status(cluster))


async def busiest_broker(bootstrap: str, topics: Topics) -> int:
    """The broker leading the most partitions of the contract topics, whether or not it is the
    active controller: killing it moves the most leaders."""
    described = await describe_topics(bootstrap, [spec.name for spec in topics.specs()])
    leaders = Counter(p["leader"] for topic in described for p in topic["partitions"])
    return leaders.most_common(1)[0][0]


def kill_broker(cluster: StackSettings, node: int) -> None:
    pid = kafka.running_broker_pid(cluster.paths.broker(node))
    assert pid is not None, f"broker {node} is not running"
    os.killpg(pid, signal.SIGKILL)  # started in a session of its own: the group is the broker
    wait_until(lambda: not is_alive(pid), what=f"broker {node} (pid {pid}) gone")


def recovery(events: list[Envelope], killed_at: datetime) -> str:
    """What the kill cost, read from the run's events: how long the run went quiet, and what
    was delivered or done twice (which the fold and the workers absorb)."""
    times = sorted(e.time for e in events)
    after = [t for t in times if t > killed_at]
    silence = max((b - a).total_seconds() for a, b in pairwise(times))
    processed = [e.data for e in events if isinstance(e.data, ev.StageItemProcessed)]
    dispatched = [e.data for e in events if isinstance(e.data, ev.StageBatchDispatched)]
    items_again = len(processed) - len({(p.stage, p.item.id) for p in processed})
    batches_again = sum(1 for d in dispatched if d.attempt > 1)
    copies = len(events) - len({e.message_id for e in events})
    first = f"{(after[0] - killed_at).total_seconds():.1f} s" if after else "never"
    return (
        f"first event after the kill {first}, longest silence {silence:.1f} s; "
        f"{copies} event records seen twice, {items_again} items processed twice, "
        f"{batches_again} batches dispatched again"
    )
