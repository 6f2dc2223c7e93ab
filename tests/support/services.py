"""Run the services as separate processes, the way they run in production, for end-to-end and
fault tests: start, wait until ready (their metrics say so), kill -9, stop."""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.topics import Topics
from local_stack.processes import port_is_free
from tests.support.wait import WaitTimeout, wait_until

READY_METRIC = "automation_service_ready 1.0"
PR_SET_PDEATHSIG = 1


# Resolved here, in the parent: the child between fork and exec should do as little as it can.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to kill it when the test process dies, so a test run
    that is itself killed (a timeout, kill -9) leaves no service behind."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def resolve(command: str) -> str:
    """A console script of this environment, found next to the running Python when the venv's
    bin directory is not on PATH."""
    beside_python = Path(sys.executable).parent / command
    return str(beside_python) if beside_python.exists() else shutil.which(command) or command


def service_env(
    kafka_bootstrap: str, database_url: str, topics: Topics, run_dir: Path
) -> dict[str, str]:
    """What every service a test starts is given: its Kafka, database and topic namespace, the
    offline AI, no scheduler, and its files under `run_dir`."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "TOPIC_NAMESPACE": topics.namespace,
        "KAFKA_GROUP_PREFIX": topics.namespace,
        "AI_PROVIDER": "offline",
        "SCHEDULER_ENABLED": "false",  # tests that want the scheduler turn it on
        "MEDIA_DIR": str(run_dir / "media"),
        "LOG_BASE_DIR": str(run_dir / "logs"),
    }


# Test servers take their ports from here, below the kernel's ephemeral range.
FIRST_PORT = 20_000


def ephemeral_ports() -> range:
    """Where the kernel picks the local port of an outgoing connection."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32_768, 61_000)


# Ports this test process has handed out. A server takes a second or two to bind its port (a
# service imports its modules first), and a port free when asked again in that time is not.
_GIVEN: set[int] = set()


def free_port(size: int = 1) -> int:
    """The first of `size` ports in a row that are free now, outside the ephemeral range: a port
    from that range, free when asked, can become an outgoing connection's before the server
    meant for it binds, and a broker takes seconds to start. Each pytest-xdist worker picks from
    a part of the range of its own, and never hands out a port twice: two services given one
    port, the second dies at its bind while the first answers its readiness checks."""
    last = ephemeral_ports().start
    if last - size <= FIRST_PORT:  # a machine whose ephemeral range leaves no room below it
        last = 65_536
    part = worker_part(range(FIRST_PORT, last))
    while True:
        first = random.randrange(part.start, part.stop - size)
        ports = range(first, first + size)
        if not _GIVEN.intersection(ports) and all(port_is_free(port) for port in ports):
            _GIVEN.update(ports)
            return first


def worker_part(ports: range, environ: Mapping[str, str] = os.environ) -> range:
    """This test process's share of `ports`: the n-th of as many parts as there are pytest-xdist
    workers (gw0, gw1, ...), or all of them without xdist."""
    worker = environ.get("PYTEST_XDIST_WORKER", "")
    count = int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count <= 1:
        return ports
    width = len(ports) // count
    start = ports.start + int(worker[2:]) * width
    return range(start, start + width)


@dataclass
class ServiceProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env, "METRICS_PORT": str(self.metrics_port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _prctl is not None else None,
        )
        log.close()
        return self

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()

    def wait_ready(self, timeout: float = 60.0) -> ServiceProcess:

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}: {self.tail()}"
                )
            return READY_METRIC in self.metrics()

        try:
            wait_until(ready, timeout=timeout, retry_on=(OSError,), what=f"{self.name} ready")
        except WaitTimeout as timeout_error:
            raise WaitTimeout(f"{timeout_error}; its log ends: {self.tail()}") from None
        return self

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Services:
    """Starts services with the session's Kafka, PostgreSQL and topic namespace."""

    base_env: dict[str, str]
    log_dir: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: str,
        *args: str,
        env: dict[str, str] | None = None,
        ready: bool = True,
        timeout: float = 60.0,
    ) -> ServiceProcess:
        service = ServiceProcess(
            name=name,
            argv=[resolve(command), *args],
            env={**self.base_env, **(env or {})},
            log_path=self.log_dir / f"{name}.log",
            metrics_port=free_port(),
        ).start()
        self.started.append(service)
        return service.wait_ready(timeout) if ready else service

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()
