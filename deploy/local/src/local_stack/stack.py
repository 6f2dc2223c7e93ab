"""The local stack as a whole: bring it up, check it, take it down. Also the API tests use."""

from __future__ import annotations

import inspect
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from contracts.settings import local_database_url
from local_stack import kafka, postgres, services
from local_stack.processes import StackError, file_lock, run_async
from local_stack.settings import HOME_MARKER, StackPaths, StackSettings
from local_stack.topics import ensure_topics

Report = Callable[[str], None]
EXTERNAL_CHECK_TIMEOUT_S = 30.0


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class StackEndpoints:
    kafka_bootstrap: str
    database_url: str
    started: bool  # this call started Kafka or PostgreSQL


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    endpoint: str
    external: bool
    pid: int | None
    answering: bool


@dataclass(frozen=True)
class StopReport:
    kafka_pids: list[int]
    postgres_pid: int | None
    services_pid: int | None = None

    @property
    def stopped_anything(self) -> bool:
        return bool(self.kafka_pids) or self.postgres_pid is not None or bool(self.services_pid)


def ensure_up(
    settings: StackSettings | None = None, report: Report = _silent, database: str | None = None
) -> StackEndpoints:
    """Kafka with every contract topic, PostgreSQL with the app database, migrated.

    Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL instead of local servers when they are set.
    `database` names another database of the local PostgreSQL to create, migrate and hand out
    instead of the app's: the tests' rows stay out of reach of the services a demo left running
    (they act on rows of every account). If an infrastructure step fails, whatever this call
    started is stopped again; a failed migration leaves the servers up so the database can be
    inspected.
    """
    settings = settings or StackSettings()
    paths = settings.paths
    claim_home(paths)
    database_url = settings.database_url
    with file_lock(paths.lock):
        started_kafka, started_postgres = _ensure_servers(settings, paths, report)
        try:
            _ensure_topics(settings, report)
            if database and not settings.external_database_url:
                postgres.ensure_app_database(settings.pg_port, database)
                database_url = local_database_url(settings.pg_port, database)
        except BaseException:
            _stop_started(paths, started_kafka, started_postgres)
            raise
        migrate(database_url, report)
    return StackEndpoints(
        kafka_bootstrap=settings.kafka_bootstrap,
        database_url=database_url,
        started=bool(started_kafka) or started_postgres,
    )


def claim_home(paths: StackPaths) -> None:
    """Marks the stack home as ours, refusing a non-empty directory that isn't one already."""
    if paths.marker.is_file():
        return
    if paths.home.is_dir() and any(paths.home.iterdir()):
        raise StackError(
            f"STACK_HOME {paths.home} is a non-empty directory that is not a stack home; "
            "point STACK_HOME at a new or empty directory"
        )
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.marker.write_text("content-automation local stack home; `stack reset` deletes it\n")
    # Keeps the default home (<repo>/.stack) out of git without touching the repo's .gitignore.
    (paths.home / ".gitignore").write_text("*\n")


def _ensure_kafka(settings: StackSettings, report: Report) -> list[int]:
    """The nodes this call started."""
    if settings.external_kafka:
        kafka.wait_until_answering(settings.external_kafka, EXTERNAL_CHECK_TIMEOUT_S)
        report(f"Kafka: external {settings.external_kafka} answers")
        return []
    began = time.monotonic()
    started = kafka.ensure_brokers(settings)
    for node in settings.nodes:
        name = _kafka_name(settings, node)
        pid = kafka.running_broker_pid(settings.paths.broker(node))
        if node in started:
            report(f"{name}: started (pid {pid}) in {time.monotonic() - began:.1f} s")
        else:
            report(f"{name}: already up (pid {pid})")
    return started


def _ensure_servers(
    settings: StackSettings, paths: StackPaths, report: Report
) -> tuple[list[int], bool]:
    """Kafka and PostgreSQL side by side: each mostly waits (for a download, a JVM, initdb), so
    together they take as long as the slower one (leaving the pool waits for both). If either
    fails, what the other started is stopped again."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="stack-up") as pool:
        kafka_up = pool.submit(_ensure_kafka, settings, report)
        postgres_up = pool.submit(_ensure_postgres, settings, paths, report)
    failure = kafka_up.exception() or postgres_up.exception()
    if failure is not None:
        _stop_started(
            paths,
            [] if kafka_up.exception() else kafka_up.result(),
            False if postgres_up.exception() else postgres_up.result(),
        )
        raise failure
    return kafka_up.result(), postgres_up.result()


def _kafka_name(settings: StackSettings, node: int) -> str:
    return "Kafka" if settings.brokers == 1 else f"Kafka {node}"


def _ensure_topics(settings: StackSettings, report: Report) -> None:
    topics = ensure_topics(settings.kafka_bootstrap, settings.topics)
    if topics.created:
        report(f"Topics: created {len(topics.created)}, {len(topics.existing)} already there")
    else:
        report(f"Topics: all {len(topics.existing)} present")
    for warning in topics.warnings:
        report(f"warning: {warning}")


def _ensure_postgres(settings: StackSettings, paths: StackPaths, report: Report) -> bool:
    if settings.external_database_url:
        conninfo = postgres.sync_conninfo(settings.external_database_url)
        postgres.wait_until_accepting(conninfo, EXTERNAL_CHECK_TIMEOUT_S)
        report("PostgreSQL: external DATABASE_URL answers")
        return False
    began = time.monotonic()
    started = postgres.ensure_cluster(settings, paths)
    pid = postgres.running_postmaster_pid(paths)
    if started:
        report(f"PostgreSQL: started (pid {pid}) in {time.monotonic() - began:.1f} s")
    else:
        report(f"PostgreSQL: already up (pid {pid})")
    return started


def migrate(database_url: str, report: Report = _silent) -> bool:
    """Runs contracts.db.migrate.upgrade; False if that module doesn't exist (yet)."""
    try:
        from contracts.db.migrate import upgrade
    except ImportError as missing:
        if missing.name not in ("contracts.db", "contracts.db.migrate"):
            raise
        report("warning: contracts.db.migrate.upgrade is not available; migrations skipped")
        return False
    outcome = upgrade(database_url)
    if inspect.isawaitable(outcome):
        run_async(lambda: outcome)
    report("Schema: migrated")
    return True


def _stop_started(paths: StackPaths, kafka_started: list[int], postgres_started: bool) -> None:
    if kafka_started:
        kafka.stop_brokers(paths, kafka_started)
    if postgres_started:
        postgres.stop_cluster(paths)


def down(settings: StackSettings | None = None) -> StopReport:
    """Stops the services, Kafka and PostgreSQL this stack home started, nothing else."""
    settings = settings or StackSettings()
    paths = settings.paths
    if not paths.home.is_dir():
        return StopReport(kafka_pids=[], postgres_pid=None)
    with file_lock(paths.lock):
        services_pid = services.stop(settings)  # they use the servers: they go first
        return StopReport(
            kafka_pids=kafka.stop_brokers(paths),
            postgres_pid=postgres.stop_cluster(paths),
            services_pid=services_pid,
        )


def reset(settings: StackSettings | None = None) -> StopReport:
    """down, then delete the stack home (the jar cache outside it stays)."""
    settings = settings or StackSettings()
    paths = settings.paths
    stopped = down(settings)
    if paths.home.is_dir():
        if not paths.marker.is_file():
            raise StackError(f"{paths.home} has no {HOME_MARKER} file; not deleting it")
        shutil.rmtree(paths.home)
    return stopped


def status(settings: StackSettings | None = None) -> list[ComponentStatus]:
    """Kafka (each broker of a local cluster) and PostgreSQL."""
    settings = settings or StackSettings()
    return [*_kafka_status(settings), _postgres_status(settings)]


def _kafka_status(settings: StackSettings) -> list[ComponentStatus]:
    if settings.external_kafka:
        answering = run_async(lambda: kafka.answers(settings.kafka_bootstrap))
        return [ComponentStatus("Kafka", settings.kafka_bootstrap, True, None, answering)]
    return [_broker_status(settings, node) for node in settings.nodes]


def _broker_status(settings: StackSettings, node: int) -> ComponentStatus:
    pid = kafka.running_broker_pid(settings.paths.broker(node))
    answering = pid is not None and run_async(lambda: kafka.is_registered(settings, node))
    name, endpoint = _kafka_name(settings, node), settings.node_bootstrap(node)
    return ComponentStatus(name, endpoint, False, pid, answering)


def _postgres_status(settings: StackSettings) -> ComponentStatus:
    external = bool(settings.external_database_url)
    pid = None if external else postgres.running_postmaster_pid(settings.paths)
    answering = False
    if external or pid is not None:
        try:
            postgres.wait_until_accepting(postgres.sync_conninfo(settings.database_url), 3)
            answering = True
        except StackError:
            pass
    return ComponentStatus("PostgreSQL", settings.database_url, external, pid, answering)
