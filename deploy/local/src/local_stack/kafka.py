"""Apache Kafka from Maven Central jars in KRaft mode: one combined broker + controller, or, with
STACK_BROKERS=3, a cluster of three such nodes on 127.0.0.1 (ports: local_stack.settings)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from local_stack.kafka_config import broker_properties, log4j_properties
from local_stack.kafka_jars import JVM_OPTIONS, ensure_broker_jars
from local_stack.processes import (
    StackError,
    is_alive,
    pids_matching,
    port_frees_up,
    quiet_logger,
    read_pid,
    run_async,
    terminate_all,
)
from local_stack.settings import ALL_NODES, BrokerPaths, StackPaths, StackSettings

BROKER_MAIN_CLASS = "kafka.Kafka"
BROKER_HEAP = {1: "768m", 3: "512m"}  # by broker count: three small heaps fit beside the rest
STOP_GRACE_S = 30.0
# A broker killed with SIGKILL looks gone (its main thread a zombie) while its other threads,
# and so its listening sockets, are still being torn down: `up` right after the kill waits.
PORT_LINGER_S = 15.0


def write_broker_config(settings: StackSettings, node: int) -> None:
    broker = settings.paths.broker(node)
    broker.data.mkdir(parents=True, exist_ok=True)
    broker.config.write_text(broker_properties(settings, node))
    broker.log4j_config.write_text(log4j_properties(broker))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("`java` is not on PATH; the Kafka broker needs Java 17+")
    return java


def _java_command(
    libs: Path, broker: BrokerPaths, *args: str, heap: str | None = None
) -> list[str]:
    heap_options = [f"-Xmx{heap}"] if heap else []
    return [
        _java(), *JVM_OPTIONS, *heap_options, f"-Dlog4j2.configurationFile={broker.log4j_config}",
        "-cp", f"{libs}/*", *args,
    ]  # fmt: skip


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def formatted_broker_count(paths: StackPaths) -> int | None:
    """The broker count this home was formatted for; homes from before the record held one."""
    if paths.broker_count.is_file():
        return int(paths.broker_count.read_text())
    return 1 if _meta(paths.broker(1)).is_file() else None


def refuse_other_broker_count(settings: StackSettings) -> None:
    formatted = formatted_broker_count(settings.paths)
    if formatted not in (None, settings.brokers):
        raise StackError(
            f"the Kafka storage in {settings.paths.home} is formatted for {formatted} broker(s), "
            f"not STACK_BROKERS={settings.brokers}: `stack reset` it, or use another STACK_HOME"
        )


def format_storage_once(libs: Path, settings: StackSettings) -> None:
    """Formats the nodes not formatted yet, with the cluster id of those that are."""
    paths = settings.paths
    paths.broker_count.write_text(f"{settings.brokers}\n")
    cluster_id = _cluster_id(paths, settings.nodes) or new_cluster_id()
    mode = ["--standalone"] if settings.brokers == 1 else []  # static voters need no flag
    for node in settings.nodes:
        broker = paths.broker(node)
        if _meta(broker).is_file():
            continue
        command = _java_command(
            libs, broker, "kafka.tools.StorageTool", "format",
            # `=` form: a base64url id may start with "-", which would read as an option.
            f"--cluster-id={cluster_id}", "-c", str(broker.config), *mode,
        )  # fmt: skip
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            broker.console_log.write_text(result.stdout + result.stderr)
            raise StackError("formatting the Kafka storage failed", broker.console_log)


def _meta(broker: BrokerPaths) -> Path:
    return broker.data / "meta.properties"


def _cluster_id(paths: StackPaths, nodes: range) -> str | None:
    for node in nodes:
        meta = _meta(paths.broker(node))
        if meta.is_file():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.removeprefix("cluster.id=").strip()
    return None


def running_broker_pid(broker: BrokerPaths) -> int | None:
    """A broker's pid: from its pid file, else found by its config path on the command line."""
    running = _broker_pids(broker)
    recorded = read_pid(broker.pid)
    if recorded in running:
        return recorded
    return running[0] if running else None


def _broker_pids(broker: BrokerPaths) -> list[int]:
    return pids_matching(BROKER_MAIN_CLASS, str(broker.config))


def start_broker(libs: Path, broker: BrokerPaths, heap: str) -> int:
    # A fresh log per start, so a failure report's tail shows this start and not the last run.
    if broker.log.is_file():
        broker.log.replace(broker.log.with_suffix(".log.prev"))
    command = _java_command(libs, broker, BROKER_MAIN_CLASS, str(broker.config), heap=heap)
    # posix_spawn rather than Popen: the broker outlives this process, and a Popen handle
    # left behind warns (ResourceWarning) when it is collected.
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(broker.console_log),
         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]  # fmt: skip
    pid = os.posix_spawn(
        command[0], command, dict(os.environ), file_actions=file_actions, setsid=True
    )
    broker.pid.write_text(f"{pid}\n")
    return pid


async def registered_brokers(bootstrap: str, attempt_timeout_s: float = 5.0) -> set[int]:
    """The node ids of the brokers listed by the first server of `bootstrap` that answers;
    none when no server answers. The listing comes from that server itself."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        with quiet_logger("aiokafka"):
            await asyncio.wait_for(client.bootstrap(), attempt_timeout_s)
        # Before any broker registers, the listing holds a "bootstrap-0" placeholder.
        return {b.nodeId for b in client.cluster.brokers() if isinstance(b.nodeId, int)}
    except Exception:
        return set()
    finally:
        await client.close()


async def answers(bootstrap: str, attempt_timeout_s: float = 5.0) -> bool:
    """True when a Kafka cluster at `bootstrap` returns metadata listing at least one broker."""
    return bool(await registered_brokers(bootstrap, attempt_timeout_s))


def wait_until_answering(bootstrap: str, timeout_s: float) -> None:
    _poll(lambda: answers(bootstrap), timeout_s, (), f"Kafka at {bootstrap} did not answer")


async def is_registered(settings: StackSettings, node: int) -> bool:
    """The node answers on its own port, and the cluster lists it (a killed broker stays
    listed until its session times out, so the listing alone would not do)."""
    return node in await registered_brokers(settings.node_bootstrap(node))


def wait_until_registered(settings: StackSettings, pids: tuple[int, ...]) -> None:
    async def all_registered() -> bool:
        return all([await is_registered(settings, node) for node in settings.nodes])

    failure = f"the Kafka brokers at {settings.local_bootstrap} did not all register"
    _poll(all_registered, settings.kafka_ready_timeout_s, pids, failure)


def _poll(
    check: Callable[[], Awaitable[bool]], timeout_s: float, pids: tuple[int, ...], failure: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run_async(check):
            return
        for pid in pids:
            if not is_alive(pid):
                raise StackError(f"the Kafka broker (pid {pid}) exited during startup")
        time.sleep(0.5)
    raise StackError(f"{failure} within {timeout_s:.0f} s")


def stop_brokers(paths: StackPaths, nodes: Iterable[int] = ALL_NODES) -> list[int]:
    """Stops the brokers of this stack home (all at once: a node stopping alone waits for a
    quorum the others took away); returns the pids that were stopped."""
    brokers = [paths.broker(node) for node in nodes]
    stopped = [pid for broker in brokers for pid in _broker_pids(broker)]
    terminate_all(stopped, STOP_GRACE_S)
    leftovers = [pid for broker in brokers for pid in _broker_pids(broker)]
    if leftovers:
        raise StackError(
            f"Kafka processes still running after stop: {leftovers}",
            *(broker.log for broker in brokers),
        )
    for broker in brokers:
        broker.pid.unlink(missing_ok=True)
    return stopped


def ensure_brokers(settings: StackSettings) -> list[int]:
    """Starts the local brokers that are not running; returns the nodes this call started."""
    refuse_other_broker_count(settings)
    paths = settings.paths
    down = [node for node in settings.nodes if running_broker_pid(paths.broker(node)) is None]
    if down:
        _refuse_taken_ports(settings, down)
        libs = ensure_broker_jars(settings.cache_dir, settings.maven_repository)
        for node in down:
            write_broker_config(settings, node)
        format_storage_once(libs, settings)
        for node in down:
            start_broker(libs, paths.broker(node), BROKER_HEAP[settings.brokers])
    try:
        _wait_or_explain(settings)
    except BaseException:
        stop_brokers(paths, down)
        raise
    return down


def _wait_or_explain(settings: StackSettings) -> None:
    brokers = [settings.paths.broker(node) for node in settings.nodes]
    pids = tuple(pid for broker in brokers if (pid := running_broker_pid(broker)) is not None)
    try:
        wait_until_registered(settings, pids)
    except StackError as failure:
        logs = [path for broker in brokers for path in (broker.log, broker.console_log)]
        raise StackError(failure.message, *logs) from failure


def _refuse_taken_ports(settings: StackSettings, nodes: list[int]) -> None:
    # Without this a foreign broker on our port could pass our readiness check.
    for node in nodes:
        for port in (settings.broker_port(node), settings.controller_port(node)):
            if not port_frees_up(port, PORT_LINGER_S):
                raise StackError(
                    f"Kafka cannot start: 127.0.0.1:{port} is already in use by a process this "
                    "stack did not start (set STACK_KAFKA_PORT to use other ports, or stop that "
                    "process)",
                    settings.paths.broker(node).log,
                    show_log_tail=False,
                )
