"""What the pipeline figures share: a fresh topic namespace with the services as processes (the
way tests/support/services.py starts them), sites with the sample keywords, runs started on the
run-commands topic in one go, and one reader of the run-events topic that folds every run as its
events arrive and notes when each run ended (the Kafka timestamp of its last event)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from api_gateway import accounts
from api_gateway.run_commands import new_run_id
from contracts import commands as cmd
from contracts.codec import UnreadableMessage, decode, encode, kafka_headers
from contracts.envelope import Envelope
from contracts.state import FINISHED, RunState, fold
from contracts.topics import Topics
from contracts.values import RunConfig
from tests.support.kafka import delete_topics
from tests.support.pipeline import Site, command, new_site
from tests.support.services import ServiceProcess, Services, free_port

CREDITS = 10**7
# Console scripts of the services, by the name the figures use.
COMMANDS = {
    "orchestrator": "orchestrator",
    "workers": "stage-worker",
    "workers-2": "stage-worker",
    "log-sink": "log-sink",
    "gateway": "api-gateway",
}
FAST_ORCHESTRATOR = {"TICK_SECONDS": "0.1", "SCHEDULER_ENABLED": "false"}


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    database_url: str
    workdir: Path
    engine: sa.Engine


@dataclass(frozen=True)
class Seen:
    message: Envelope
    timestamp: float  # the record's Kafka timestamp, seconds since the epoch


@dataclass(frozen=True)
class Runs:
    """Runs started together, one per new site, once all have completed."""

    sites: list[Site]
    run_ids: list[str]
    states: list[RunState]
    seconds: list[float]  # each run's, from just before the first StartRun left to its end


@dataclass
class Deployment:
    stack: Stack
    topics: Topics
    services: Services
    gateway_url: str | None = None

    def new_sites(self, count: int, keywords: int) -> list[Site]:
        return [new_site(self.stack.engine, keywords, CREDITS) for _ in range(count)]

    async def start_runs(self, sites: list[Site], config: RunConfig) -> tuple[list[str], float]:
        """Start one run per site through one producer already connected; returns the run ids
        and the wall-clock time just before the first StartRun left."""
        run_ids = [new_run_id() for _ in sites]
        starts = [
            command(site, cmd.StartRun(run_id=run_id, trigger="manual", config=config), run_id)
            for site, run_id in zip(sites, run_ids, strict=True)
        ]
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.bootstrap, linger_ms=5)
        await producer.start()
        try:
            began = time.time()
            sent = [
                await producer.send(
                    self.topics.run_commands, encode(s), s.key, headers=kafka_headers(s)
                )
                for s in starts
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        return run_ids, began

    async def run_new_sites(self, sites: int, keywords: int, config: RunConfig) -> Runs:
        """`sites` new sites of `keywords` each, their runs started together and waited for."""
        made = self.new_sites(sites, keywords)
        async with watch(self) as watcher:
            run_ids, began = await self.start_runs(made, config)
            states = await watcher.finished(run_ids)
        seconds = [watcher.ended[run_id] - began for run_id in run_ids]
        return Runs(made, run_ids, states, seconds)


def topic_partitions(topics: Topics, topic: str) -> list[TopicPartition]:
    spec = next(spec for spec in topics.specs() if spec.name == topic)
    return [TopicPartition(topic, p) for p in range(spec.partitions)]


@contextlib.asynccontextmanager
async def deployment(
    stack: Stack, *names: str, latency_ms: int = 0, env: dict[str, str] | None = None
) -> AsyncIterator[Deployment]:
    """The named services (keys of COMMANDS) on a fresh namespace, with `env` over the defaults;
    all stopped and the topics deleted on the way out."""
    from local_stack.topics import ensure_topics

    topics = Topics(f"b{uuid.uuid4().hex[:8]}.")
    await asyncio.to_thread(ensure_topics, stack.bootstrap, topics)
    run_dir = stack.workdir / topics.namespace.rstrip(".")
    services = Services(
        base_env={
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "DATABASE_URL": stack.database_url,
            "TOPIC_NAMESPACE": topics.namespace,
            "KAFKA_GROUP_PREFIX": topics.namespace,
            "AI_PROVIDER": "offline",
            "OFFLINE_LATENCY_MS": str(latency_ms),
            "MEDIA_DIR": str(run_dir / "media"),
            "LOG_BASE_DIR": str(run_dir / "logs"),
            **(env or {}),
        },
        log_dir=run_dir / "service-logs",
    )
    deployed = Deployment(stack, topics, services)
    extra = {name: FAST_ORCHESTRATOR if name == "orchestrator" else {} for name in names}
    if "gateway" in names:
        port = free_port()
        extra["gateway"] = {"GATEWAY_PORT": str(port)}
        deployed.gateway_url = f"http://127.0.0.1:{port}"
    try:
        # Together: most of a start is waiting (imports, joining a consumer group).
        await asyncio.gather(
            *(asyncio.to_thread(start, services, name, extra[name]) for name in names)
        )
        yield deployed
    finally:
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in services.started))
        names_of = [spec.name for spec in topics.specs()]
        await asyncio.to_thread(delete_topics, stack.bootstrap, names_of)


def start(services: Services, name: str, env: dict[str, str]) -> ServiceProcess:
    return services.start(name, COMMANDS[name], env=env, timeout=120)


def issue_token(engine: sa.Engine, account_id: int) -> str:
    """An API token for the account, made the way `automation-admin create-token` makes it."""
    with engine.begin() as conn:
        user_id = accounts.create_user(conn, account_id, f"bench-{uuid.uuid4().hex[:10]}@x.test")
        return accounts.issue_token(conn, user_id, "bench").token


@dataclass
class RunWatcher:
    """Follows the run-events topic from its beginning: the fold of every run, its events with
    their Kafka timestamps, and when it finished."""

    bootstrap: str
    topics: Topics
    states: dict[str, RunState] = field(default_factory=dict)
    events: dict[str, list[Seen]] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)

    async def __aenter__(self) -> RunWatcher:
        self._changed = asyncio.Event()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        partitions = topic_partitions(self.topics, self.topics.run_events)
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    with contextlib.suppress(UnreadableMessage):
                        self._see(decode(record.value), record.timestamp / 1000)

    def _see(self, message: Envelope, timestamp: float) -> None:
        run_id = message.run_id
        if run_id is None:
            return
        self.events.setdefault(run_id, []).append(Seen(message, timestamp))
        state = self.states[run_id] = fold((message,), self.states.get(run_id))
        if state.status in FINISHED and run_id not in self.ended:
            self.ended[run_id] = timestamp
            self._changed.set()

    async def finished(self, run_ids: list[str], timeout: float = 3600) -> list[RunState]:
        """The runs' final states once all have ended; an error if one did not complete."""
        async with asyncio.timeout(timeout):
            while not all(run_id in self.ended for run_id in run_ids):
                changed = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait({changed, self._task}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if self._task.done():
                    self._task.result()  # the reader died: say why instead of waiting on
                self._changed.clear()
        for run_id in run_ids:
            state = self.states[run_id]
            if state.status != "completed":
                raise RuntimeError(f"run {run_id} ended {state.status}: {state.error}")
        return [self.states[run_id] for run_id in run_ids]


def watch(deployed: Deployment) -> RunWatcher:
    return RunWatcher(deployed.stack.bootstrap, deployed.topics)


def steps_of(state: RunState) -> int:
    """Stage-steps of a run: items through stages 1-6, processed or failed."""
    return sum(stage.processed_count + len(stage.failed) for stage in state.stages[:6])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
