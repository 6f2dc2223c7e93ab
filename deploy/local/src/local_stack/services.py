"""The four services as supervised background processes, for the demo and for people trying the
system by hand. supervisord restarts a service that dies (kill -9 included) and stops them all
as process groups, so `stack down` leaves nothing behind."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts.settings import default_log_dir, default_media_dir
from local_stack.processes import StackError, is_alive, read_pid, wait_until_gone
from local_stack.settings import StackSettings

READY = "automation_service_ready 1.0"
GATEWAY_PORT = 8000


@dataclass(frozen=True)
class Service:
    name: str
    command: str
    metrics_port: int
    env: tuple[tuple[str, str], ...] = ()


SERVICES = (
    Service("orchestrator", "orchestrator", 9101),
    Service("stage-workers", "stage-worker", 9102),
    Service("log-sink", "log-sink", 9103),
    Service("api-gateway", "api-gateway", 9104, (("GATEWAY_PORT", str(GATEWAY_PORT)),)),
    # The gateway's second process (ADR 19): consumes run events, sends webhooks.
    Service("api-gateway-webhooks", "api-gateway webhooks", 9105),
)
# Local use and tests: webhook endpoints may be http:// and on this machine (a receiver on
# 127.0.0.1). Anywhere else both stay refused unless set.
LOCAL_WEBHOOKS = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"}


@dataclass(frozen=True)
class ServicePaths:
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "supervisord.conf"

    @property
    def pid(self) -> Path:
        return self.home / "supervisord.pid"

    @property
    def socket(self) -> Path:
        return self.home / "supervisor.sock"

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"


def paths(settings: StackSettings) -> ServicePaths:
    return ServicePaths(settings.paths.home / "services")


def shared_env(settings: StackSettings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "DATABASE_URL": settings.database_url,
        "MEDIA_DIR": str(default_media_dir()),
        "LOG_BASE_DIR": str(default_log_dir()),
        "AI_PROVIDER": "offline",
        "PYTHONUNBUFFERED": "1",
        **LOCAL_WEBHOOKS,
        # The AI and tracing settings of whoever starts the stack reach the services:
        # AI_PROVIDER=openai with OPENAI_API_KEY (or OPENAI_BASE_URL for any compatible
        # server), budgets, prices; OTEL_EXPORTER_OTLP_ENDPOINT and the SDK's other variables.
        **passed_settings(os.environ),
    }


def _quoted(value: str) -> str:
    """A value as supervisord's environment line reads it back: in quotes it has no escapes
    for (double, or single when the value holds double ones, as JSON does), % doubled (it
    expands %(name)s)."""
    quote = "'" if '"' in value else '"'
    if quote in value:
        raise StackError(f"a setting cannot hold both kinds of quote: {value[:40]}...")
    return quote + value.replace("%", "%%") + quote


def passed_settings(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith(("AI_", "OPENAI_", "OTEL_"))}


def render_config(settings: StackSettings) -> str:
    where = paths(settings)
    bin_dir = Path(sys.executable).parent
    sections = [
        f"[supervisord]\nlogfile={where.home / 'supervisord.log'}\npidfile={where.pid}\n"
        f"childlogdir={where.home}\n",
        f"[unix_http_server]\nfile={where.socket}\n",
        f"[supervisorctl]\nserverurl=unix://{where.socket}\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
    ]
    for service in SERVICES:
        env = {
            **shared_env(settings),
            **dict(service.env),
            "METRICS_PORT": str(service.metrics_port),
        }
        environment = ",".join(f"{k}={_quoted(v)}" for k, v in env.items())
        sections.append(
            f"[program:{service.name}]\ncommand={bin_dir / service.command}\n"
            f"environment={environment}\nautorestart=true\nstartsecs=2\nstopwaitsecs=20\n"
            f"stopasgroup=true\nkillasgroup=true\nredirect_stderr=true\n"
            f"stdout_logfile={where.log(service.name)}\n"
        )
    return "\n".join(sections)


# What the services and the demo import: compiled once, in one process, the first time.
MODULES = ("orchestrator.app", "stage_workers.app", "log_sink.app", "api_gateway.app")


def compile_ahead(also: tuple[str, ...] = ()) -> subprocess.Popen | None:
    """On a first start (nothing compiled yet), import what the services import in a process of
    its own, which writes the compiled modules while the caller waits for other things (the
    stack's downloads). Without it, five services starting at once each compile the same
    modules. None when they are compiled already, or when the environment says not to write
    them (PYTHONDONTWRITEBYTECODE)."""
    spec = importlib.util.find_spec("api_gateway.app")
    origin = spec.origin if spec else None
    compiled = origin is not None and Path(importlib.util.cache_from_source(origin)).exists()
    if compiled or sys.dont_write_bytecode:
        return None
    imports = ", ".join((*MODULES, *also))
    # At a lower priority: the caller's downloads and the Kafka broker's start are what it waits
    # for, and the compiled modules are needed only after them.
    return subprocess.Popen([sys.executable, "-c", f"import os; os.nice(10); import {imports}"])


def supervisord_pid(settings: StackSettings) -> int | None:
    pid = read_pid(paths(settings).pid)
    return pid if pid is not None and is_alive(pid) else None


def ensure_running(settings: StackSettings, timeout_s: float = 90.0) -> bool:
    """Start the services unless they run; wait until each says it is ready."""
    where = paths(settings)
    where.home.mkdir(parents=True, exist_ok=True)
    where.config.write_text(render_config(settings))
    started = False
    if supervisord_pid(settings) is None:
        subprocess.run(
            [str(Path(sys.executable).parent / "supervisord"), "-c", str(where.config)], check=True
        )
        started = True
    for service in SERVICES:
        wait_ready(service, where.log(service.name), timeout_s)
    return started


def wait_ready(service: Service, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{service.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                if READY in response.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise StackError(f"{service.name} did not become ready in {timeout_s:.0f} s", log)


def stop(settings: StackSettings, timeout_s: float = 40.0) -> int | None:
    """Stop the services and their supervisor; returns the supervisor's pid if one ran."""
    pid = supervisord_pid(settings)
    if pid is None:
        return None
    ctl = Path(sys.executable).parent / "supervisorctl"
    subprocess.run(
        [str(ctl), "-c", str(paths(settings).config), "shutdown"], check=False, capture_output=True
    )
    if not wait_until_gone(pid, timeout_s):
        raise StackError(f"supervisord (pid {pid}) did not stop in {timeout_s:.0f} s")
    return pid
