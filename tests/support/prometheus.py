"""A real Prometheus (Debian's `prometheus` package) for end-to-end tests: its own config, data
directory and free port, scraping the services the test started, and its HTTP API."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from tests.support.services import _die_with_parent, _prctl, free_port

REPO = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed: deploy/local/bootstrap.sh installs Debian's prometheus"
        )
    return path


def shipped_rule_groups() -> list[dict]:
    return [
        group
        for path in sorted(SHIPPED_RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]


def recording_rules() -> list[dict]:
    return [rule for group in shipped_rule_groups() for rule in group["rules"] if "record" in rule]


def alerting_rules() -> list[dict]:
    return [rule for group in shipped_rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every panel target."""
    return [
        (path.name, panel["title"], target["expr"])
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", ())
    ]


class QueryFailed(Exception):
    pass


@dataclass
class Prometheus:
    workdir: Path
    targets: dict[str, list[int]]  # job -> metrics ports on 127.0.0.1
    rule_overrides: dict[str, str] = field(default_factory=dict)  # alert -> shorter `for`
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        rules = self.workdir / "rules.yml"
        groups = shipped_rule_groups()
        for group in groups:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if rule.get("alert") in self.rule_overrides:
                    rule["for"] = self.rule_overrides[rule["alert"]]
        rules.write_text(yaml.safe_dump({"groups": groups}))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
                }
                for job, ports in self.targets.items()
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _prctl is not None else None,
        )
        log.close()
        self.wait_ready()
        return self

    @retry(
        retry=retry_if_exception_type(OSError),
        stop=stop_after_delay(30),
        wait=wait_fixed(0.2),
        reraise=True,
    )
    def wait_ready(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.tail()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            assert response.status == 200

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as error:
            raise QueryFailed(f"{path} {params}: {error.read().decode()}") from error
        if body["status"] != "success":
            raise QueryFailed(f"{path} {params}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def targets_up(self) -> dict[str, str]:
        return {
            f"{t['labels']['job']} {t['labels']['instance']}": t["health"]
            for t in self.api("targets")["activeTargets"]
        }

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        log = self.workdir / "prometheus.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
