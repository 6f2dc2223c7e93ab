"""A single-node Apache Kafka broker (KRaft, broker + controller) run from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from contracts.settings import repo_root
from local_stack.processes import (
    StackError,
    is_alive,
    pids_matching,
    port_is_free,
    quiet_logger,
    read_pid,
    run_async,
    terminate,
)
from local_stack.settings import StackPaths, StackSettings

BROKER_MAIN_CLASS = "kafka.Kafka"
BROKER_HEAP = "768m"
STOP_GRACE_S = 30.0
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pom_path() -> Path:
    beside_package = Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"
    if beside_package.is_file():
        return beside_package
    return repo_root() / "deploy" / "local" / "kafka" / "pom.xml"


def kafka_version(pom: Path) -> str:
    version = ET.parse(pom).getroot().find("m:properties/m:kafka.version", POM_NS)
    if version is None or not (version.text or "").strip():
        raise StackError(f"no <kafka.version> property in {pom}")
    return version.text.strip()


def _has_broker_jar(libs: Path, version: str) -> bool:
    return (libs / f"kafka_2.13-{version}.jar").is_file()


def ensure_broker_jars(settings: StackSettings) -> Path:
    """The cached libs dir for the pom's Kafka version; Maven fills it only when it's missing."""
    pom = pom_path()
    version = kafka_version(pom)
    libs = settings.cache_dir / f"kafka-{version}" / "libs"
    if _has_broker_jar(libs, version):
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Fetch into a scratch dir and rename, so an interrupted download never looks complete.
    scratch = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    try:
        _copy_dependencies(pom, scratch)
        if not _has_broker_jar(scratch, version):
            raise StackError(f"Maven ran but kafka_2.13-{version}.jar is not in {scratch}")
        shutil.rmtree(libs, ignore_errors=True)
        try:
            scratch.rename(libs)
        except OSError:
            if not _has_broker_jar(libs, version):  # someone else's rename won the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return libs


def _copy_dependencies(pom: Path, output_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("`mvn` is not on PATH; Maven fetches the Kafka jars")
    command = [
        mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={output_dir}",
    ]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise StackError("Maven could not fetch the Kafka jars:\n" + "\n".join(output))


def broker_properties(settings: StackSettings, paths: StackPaths) -> str:
    port, controller = settings.kafka_port, settings.controller_port
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={paths.kafka_data}",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
    ]
    return "\n".join(lines) + "\n"


def log4j_properties(paths: StackPaths) -> str:
    lines = [
        "status = warn",
        "appender.file.type = RollingFile",
        "appender.file.name = file",
        f"appender.file.fileName = {paths.kafka_log}",
        f"appender.file.filePattern = {paths.kafka_log}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 50MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = file",
    ]
    return "\n".join(lines) + "\n"


def write_broker_config(settings: StackSettings, paths: StackPaths) -> None:
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    paths.kafka_config.write_text(broker_properties(settings, paths))
    paths.kafka_log4j_config.write_text(log4j_properties(paths))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("`java` is not on PATH; the Kafka broker needs Java 17+")
    return java


def _java_command(libs: Path, paths: StackPaths, *args: str, heap: str | None = None) -> list[str]:
    heap_options = [f"-Xmx{heap}"] if heap else []
    return [
        _java(), *heap_options, f"-Dlog4j2.configurationFile={paths.kafka_log4j_config}",
        "-cp", f"{libs}/*", *args,
    ]  # fmt: skip


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def format_storage_once(libs: Path, paths: StackPaths) -> None:
    if (paths.kafka_data / "meta.properties").is_file():
        return
    command = _java_command(
        libs, paths, "kafka.tools.StorageTool", "format",
        # `=` form: a base64url id may start with "-", which would read as an option.
        f"--cluster-id={new_cluster_id()}", "-c", str(paths.kafka_config), "--standalone",
    )  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        paths.kafka_console_log.write_text(result.stdout + result.stderr)
        raise StackError("formatting the Kafka storage failed", paths.kafka_console_log)


def running_broker_pid(paths: StackPaths) -> int | None:
    """Our broker's pid: from the pid file, else found by its config path on the command line."""
    running = _our_broker_pids(paths)
    recorded = read_pid(paths.kafka_pid)
    if recorded in running:
        return recorded
    return running[0] if running else None


def _our_broker_pids(paths: StackPaths) -> list[int]:
    return pids_matching(BROKER_MAIN_CLASS, str(paths.kafka_config))


def start_broker(libs: Path, paths: StackPaths) -> int:
    # A fresh log per start, so a failure report's tail shows this start and not the last run.
    if paths.kafka_log.is_file():
        paths.kafka_log.replace(paths.kafka_log.with_suffix(".log.prev"))
    command = _java_command(
        libs, paths, BROKER_MAIN_CLASS, str(paths.kafka_config), heap=BROKER_HEAP
    )
    # posix_spawn rather than Popen: the broker outlives this process, and a Popen handle
    # left behind warns (ResourceWarning) when it is collected.
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(paths.kafka_console_log),
         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]  # fmt: skip
    pid = os.posix_spawn(
        command[0], command, dict(os.environ), file_actions=file_actions, setsid=True
    )
    paths.kafka_pid.write_text(f"{pid}\n")
    return pid


async def answers(bootstrap: str, attempt_timeout_s: float = 5.0) -> bool:
    """True when a Kafka broker at `bootstrap` returns metadata listing at least one broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        with quiet_logger("aiokafka"):
            await asyncio.wait_for(admin.start(), attempt_timeout_s)
            cluster = await asyncio.wait_for(admin.describe_cluster(), attempt_timeout_s)
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        await admin.close()


def wait_until_answering(bootstrap: str, timeout_s: float, pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run_async(lambda: answers(bootstrap)):
            return
        if pid is not None and not is_alive(pid):
            raise StackError(f"the Kafka broker (pid {pid}) exited during startup")
        time.sleep(0.5)
    raise StackError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s")


def stop_broker(paths: StackPaths) -> list[int]:
    """Stops every broker process of this stack home; returns the pids that were stopped."""
    stopped = _our_broker_pids(paths)
    for pid in stopped:
        terminate(pid, STOP_GRACE_S)
    leftovers = _our_broker_pids(paths)
    if leftovers:
        raise StackError(f"Kafka processes still running after stop: {leftovers}", paths.kafka_log)
    paths.kafka_pid.unlink(missing_ok=True)
    return stopped


def ensure_broker(settings: StackSettings, paths: StackPaths) -> bool:
    """Starts the local broker unless it is already running; True if this call started it."""
    pid = running_broker_pid(paths)
    if pid is not None:
        _wait_or_explain(settings, paths, pid)
        return False
    _refuse_taken_ports(settings, paths)
    libs = ensure_broker_jars(settings)
    write_broker_config(settings, paths)
    format_storage_once(libs, paths)
    pid = start_broker(libs, paths)
    try:
        _wait_or_explain(settings, paths, pid)
    except BaseException:
        stop_broker(paths)
        raise
    return True


def _wait_or_explain(settings: StackSettings, paths: StackPaths, pid: int) -> None:
    try:
        wait_until_answering(settings.local_bootstrap, settings.kafka_ready_timeout_s, pid)
    except StackError as failure:
        raise StackError(failure.message, paths.kafka_log, paths.kafka_console_log) from failure


def _refuse_taken_ports(settings: StackSettings, paths: StackPaths) -> None:
    # Without this a foreign broker on our port could pass our readiness check.
    for port in (settings.kafka_port, settings.controller_port):
        if not port_is_free(port):
            raise StackError(
                f"Kafka cannot start: 127.0.0.1:{port} is already in use by a process this stack "
                "did not start (set STACK_KAFKA_PORT to use other ports, or stop that process)",
                paths.kafka_log,
                show_log_tail=False,
            )
