"""The compose file agrees with the services: one image whose commands are the workspace's
console scripts, environment names the services' settings really read, and the addresses,
ports and credentials that Kafka, PostgreSQL, Prometheus and Grafana are given elsewhere in the
same files. No Docker engine runs here, so the file is checked as text against the code."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from tests.support.deploy import DEPLOY, SETTINGS, console_scripts, env_names, subcommands

COMPOSE = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
WORKERS = sorted(name for name in SERVICES if name.startswith("stage-worker-"))
APPS = ["orchestrator", *WORKERS, "log-sink", "api-gateway", "api-gateway-webhooks"]


def command_of(service: str) -> str:
    return SERVICES[service]["command"][0]


def settings_of(service: str, monkeypatch) -> BaseSettings:
    """The service's settings as the container would build them from its environment."""
    for name in {n for s in SETTINGS.values() for n in env_names(s)}:
        monkeypatch.delenv(name, raising=False)
    for name, value in SERVICES[service]["environment"].items():
        monkeypatch.setenv(name, str(value))
    return SETTINGS[command_of(service)](_env_file=None)


def prometheus_jobs() -> dict[str, dict]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.compose.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_every_service_runs_on_the_one_image_built_from_the_dockerfile():
    images = {SERVICES[name]["image"] for name in [*APPS, "migrate"]}
    assert len(images) == 1
    for name in [*APPS, "migrate"]:
        build = SERVICES[name]["build"]
        assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).is_file()
    dockerfile = (DEPLOY / "compose" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M), "the image must run Python 3.11"
    uv = re.search(r"uv==([\d.]+)", dockerfile).group(1)
    assert f"UV_VERSION={uv}" in (DEPLOY / "local" / "bootstrap.sh").read_text()


def test_commands_are_console_scripts_of_the_workspace():
    scripts = console_scripts()
    for name in [*APPS, "migrate"]:
        assert command_of(name) in scripts, name
        arguments = SERVICES[name]["command"][1:]
        if name in APPS and arguments:
            assert arguments[0] in subcommands(command_of(name)), name
    assert {command_of(name) for name in APPS} == set(SETTINGS)


def test_the_webhooks_process_is_the_gateways_second_command(monkeypatch):
    webhooks, gateway = SERVICES["api-gateway-webhooks"], SERVICES["api-gateway"]
    assert webhooks["command"] == ["api-gateway", "webhooks"]
    assert webhooks["image"] == gateway["image"]
    assert webhooks["depends_on"] == gateway["depends_on"]
    # no API, no files: nothing published, so it scales; no volume
    assert "ports" not in webhooks and "volumes" not in webhooks
    settings = settings_of("api-gateway-webhooks", monkeypatch)
    # its metrics server binds GATEWAY_HOST, as the API's does: not loopback in a container
    assert settings.http_host == "0.0.0.0"
    # the shipped defaults: https to public addresses only
    assert not settings.webhook_allow_http and not settings.webhook_allowed_networks


@pytest.mark.parametrize("service", APPS)
def test_every_environment_variable_is_read_by_the_service(service):
    known = env_names(SETTINGS[command_of(service)])
    unknown = set(SERVICES[service]["environment"]) - known
    assert not unknown, f"{service}: {unknown} are read by no setting"


@pytest.mark.parametrize("service", APPS)
def test_kafka_and_postgres_addresses_are_those_of_the_compose_servers(service, monkeypatch):
    settings = settings_of(service, monkeypatch)
    kafka = SERVICES["kafka"]["environment"]
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1]
    assert settings.kafka_bootstrap_servers == advertised
    assert advertised.split(":")[0] == "kafka"
    url = urlsplit(settings.database_url)
    postgres = SERVICES["postgres"]["environment"]
    assert (url.hostname, url.port or 5432) == ("postgres", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert "postgres" in SERVICES[service]["depends_on"]
    assert "kafka" in SERVICES[service]["depends_on"]


def test_each_stage_has_its_own_scalable_worker_service(monkeypatch):
    served = []
    for service in WORKERS:
        stages = settings_of(service, monkeypatch).stages()
        assert service == f"stage-worker-{stages[0]}" and len(stages) == 1
        assert "ports" not in SERVICES[service], "a fixed host port would stop --scale"
        assert "container_name" not in SERVICES[service]
        served += stages
    assert sorted(served) == [1, 2, 3, 4, 5, 6, 7]
    # Stage 6 renders images into the volume the gateway serves them from.
    media = [v.split(":")[1] for v in SERVICES["stage-worker-6"]["volumes"] if "media" in v]
    assert media == [str(settings_of("stage-worker-6", monkeypatch).media_dir)]
    assert str(settings_of("api-gateway", monkeypatch).media_dir) in str(
        SERVICES["api-gateway"]["volumes"]
    )


def test_prometheus_scrapes_every_service_where_it_serves_metrics(monkeypatch):
    jobs = prometheus_jobs()
    scraped = {
        "orchestrator": ["orchestrator"],
        "log-sink": ["log-sink"],
        "stage-workers": WORKERS,
        "api-gateway": ["api-gateway"],
        "api-gateway-webhooks": ["api-gateway-webhooks"],
    }
    assert set(jobs) == set(scraped)
    assert sorted(s for services in scraped.values() for s in services) == sorted(APPS)
    for job, services in scraped.items():
        for service in services:
            port = settings_of(service, monkeypatch).metrics_port
            config = jobs[job]
            if "dns_sd_configs" in config:
                [sd] = config["dns_sd_configs"]
                assert service in sd["names"] and sd["port"] == port
            else:
                assert config["static_configs"][0]["targets"] == [f"{service}:{port}"]
    gateway = settings_of("api-gateway", monkeypatch)
    # Its metrics port listens where the API does: not on loopback inside a container.
    assert gateway.http_host == "0.0.0.0", "inside a container the gateway must not bind loopback"
    assert not gateway.metrics_on_api_port
    assert SERVICES["api-gateway"]["ports"] == [f"{gateway.http_port}:{gateway.http_port}"]


def test_log_sink_and_gateway_share_the_run_logs(monkeypatch):
    written = settings_of("log-sink", monkeypatch).log_base_dir
    read = settings_of("api-gateway", monkeypatch).log_base_dir
    assert written == read
    assert f"run-logs:{written}" in SERVICES["log-sink"]["volumes"]
    assert f"run-logs:{read}:ro" in SERVICES["api-gateway"]["volumes"]


def test_prometheus_and_grafana_get_the_shipped_config_and_dashboards():
    prometheus = SERVICES["prometheus"]
    [config_flag] = [c for c in prometheus["command"] if c.startswith("--config.file=")]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    assert mounts["../prometheus"] == "/etc/prometheus"
    config = Path(config_flag.split("=", 1)[1])
    assert (DEPLOY / "prometheus" / config.relative_to("/etc/prometheus")).is_file()
    grafana = dict(v.split(":")[:2] for v in SERVICES["grafana"]["volumes"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert grafana["../grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    assert grafana["../grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    url = urlsplit(datasource["datasources"][0]["url"])
    assert url.hostname == "prometheus"
    assert f"{url.port}:{url.port}" in prometheus["ports"]
