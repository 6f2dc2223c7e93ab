"""The Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate, offline,
strict), and agree with the services: commands, environment names, probe endpoints and ports,
worker pools that cover every stage, autoscalers bounded by partitions, a Kafka cluster with
replication factor 3 and min ISR 2, and a Prometheus config that finds every Deployment."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from api_gateway.app import create_app
from api_gateway.settings import Settings as GatewaySettings
from contracts.topics import Topics
from tests.support.deploy import (
    DEPLOY,
    IMAGE,
    K8S,
    SETTINGS,
    app_deployments,
    config_env,
    console_scripts,
    container,
    documents,
    env_names,
    environment,
    of_kind,
    secret_env,
    subcommands,
)

KUSTOMIZATION = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
KUBERNETES_VERSION = "1.30.0"


@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_manifest_is_valid_for_kubernetes(name, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_generates_from_the_shipped_files():
    listed = {DEPLOY / resource for resource in KUSTOMIZATION["resources"]}
    assert listed == set(K8S.glob("*.yaml"))
    generated = {g["name"]: g["files"] for g in KUSTOMIZATION["configMapGenerator"]}
    for files in generated.values():
        assert all((DEPLOY / f).is_file() for f in files), files
    dashboards = {Path(f).name for f in generated["grafana-dashboards"]}
    assert dashboards == {p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert [i["name"] for i in KUSTOMIZATION["images"]] == [IMAGE]
    mounted = {
        v["configMap"]["name"]
        for doc in of_kind("Deployment").values()
        for v in doc["spec"]["template"]["spec"].get("volumes", [])
        if "configMap" in v
    }
    assert mounted == set(generated)


def test_every_service_runs_with_settings_it_reads():
    scripts = console_scripts()
    commands = set()
    shared_read = {"TOPIC_REPLICATION_FACTOR"}  # read by the setup job (stack up)
    for name, doc in app_deployments().items():
        [command] = container(doc)["command"]
        assert command in scripts, name
        assert set(container(doc).get("args", [])[:1]) <= subcommands(command), name
        commands.add(command)
        reads = env_names(SETTINGS[command]) | {"TOPIC_NAMESPACE"}
        own = {e["name"] for e in container(doc).get("env", [])}
        assert not own - reads, f"{name}: {own - reads} are read by no setting"
        shared_read |= reads
        assert {"configMapRef": {"name": "automation-env"}} in container(doc)["envFrom"]
        assert {"secretRef": {"name": "automation-database"}} in container(doc)["envFrom"]
    unread = set(config_env()) - shared_read
    assert not unread, f"automation-env: {unread} are read by no service"
    assert commands == set(SETTINGS)
    setup = of_kind("Job")["automation-setup"]
    assert container(setup)["command"] == ["stack", "up"]


def settings_in(doc: dict, monkeypatch):
    """The service's settings as they read the container's environment."""
    [command] = container(doc)["command"]
    for name, value in {**environment(doc), **secret_env()}.items():
        monkeypatch.setenv(name, value)
    return SETTINGS[command](_env_file=None)


def metrics_port(doc: dict, monkeypatch) -> int:
    """Where the service serves /metrics: its metrics port (the gateway's API port only when
    METRICS_ON_API_PORT says so)."""
    settings = settings_in(doc, monkeypatch)
    if isinstance(settings, GatewaySettings) and settings.metrics_on_api_port:
        return settings.http_port
    return settings.metrics_port


@pytest.mark.parametrize("name", sorted(app_deployments()))
def test_probes_hit_the_services_real_endpoints(name, monkeypatch):
    doc = app_deployments()[name]
    port = metrics_port(doc, monkeypatch)
    ports = {p["name"]: p["containerPort"] for p in container(doc)["ports"]}
    ready = container(doc)["readinessProbe"]["exec"]["command"]
    assert ready == ["python", "-m", "contracts.probe", f"http://127.0.0.1:{port}/metrics"]
    alive = container(doc)["livenessProbe"]["httpGet"]
    if name == "api-gateway":  # alive while its API answers
        settings = settings_in(doc, monkeypatch)
        assert ports[alive["port"]] == settings.http_port
        assert alive["path"] in {getattr(route, "path", None) for route in create_app().routes}
        assert settings.http_host == "0.0.0.0", "the metrics port listens where the API does"
    else:
        assert ports[alive["port"]] == port
        assert alive["path"] == "/metrics"
    if container(doc)["command"] == ["api-gateway"]:  # the API and the webhooks process
        # the metrics server binds GATEWAY_HOST: the kubelet and Prometheus come from outside
        assert settings_in(doc, monkeypatch).http_host == "0.0.0.0", name


def test_the_webhooks_process_is_the_gateways_second_command():
    webhooks, gateway = app_deployments()["api-gateway-webhooks"], app_deployments()["api-gateway"]
    assert container(webhooks)["command"] == container(gateway)["command"] == ["api-gateway"]
    assert container(webhooks)["args"] == ["webhooks"]
    assert container(webhooks)["image"] == container(gateway)["image"]
    # no API: only the metrics port, and no Service but the headless metrics one
    assert [p["name"] for p in container(webhooks)["ports"]] == ["metrics"]
    selecting = [
        name
        for name, service in of_kind("Service").items()
        if service["spec"]["selector"] == webhooks["spec"]["selector"]["matchLabels"]
    ]
    assert selecting == ["api-gateway-webhooks-metrics"]
    assert webhooks["spec"]["replicas"] >= 2


def test_the_worker_pools_cover_every_stage_once_and_scale_within_partitions():
    pools = {
        n: d for n, d in app_deployments().items() if container(d)["command"] == ["stage-worker"]
    }
    served = sorted(
        int(s) for doc in pools.values() for s in environment(doc)["WORKER_STAGES"].split(",")
    )
    assert served == [1, 2, 3, 4, 5, 6, 7]
    partitions = {spec.name: spec.partitions for spec in Topics().specs()}
    autoscalers = of_kind("HorizontalPodAutoscaler")
    assert set(autoscalers) == set(pools)
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        stages = environment(pools[name])["WORKER_STAGES"].split(",")
        most = min(partitions[Topics().stage(int(s))] for s in stages)
        assert 1 < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= most
    images = [n for n, d in pools.items() if "6" in environment(d)["WORKER_STAGES"].split(",")]
    [image_pool] = images
    mounts = container(pools[image_pool])["volumeMounts"]
    assert {"name": "media", "mountPath": config_env()["MEDIA_DIR"]} in mounts


def test_kafka_is_three_brokers_with_replication_three_and_two_in_sync():
    kafka = of_kind("StatefulSet")["kafka"]
    env = {e["name"]: e["value"] for e in container(kafka)["env"]}
    brokers = kafka["spec"]["replicas"]
    assert brokers == 3
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == config_env()["TOPIC_REPLICATION_FACTOR"]
    assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == brokers
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voters == [f"{n}@kafka-{n}.kafka-headless:9093" for n in range(brokers)]
    bootstrap = config_env()["KAFKA_BOOTSTRAP_SERVERS"].split(",")
    assert bootstrap == [f"kafka-{n}.kafka-headless:9092" for n in range(brokers)]
    assert kafka["spec"]["serviceName"] in of_kind("Service")


def test_the_database_url_points_at_the_postgres_service_with_its_credentials():
    secret = secret_env()
    url = urlsplit(secret["DATABASE_URL"])
    service = of_kind("Service")[url.hostname]
    assert service["spec"]["ports"][0]["port"] == url.port
    assert (url.username, url.password, url.path.lstrip("/")) == (
        secret["POSTGRES_USER"],
        secret["POSTGRES_PASSWORD"],
        secret["POSTGRES_DB"],
    )


def test_prometheus_finds_every_deployment_through_its_headless_service(monkeypatch):
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.k8s.yml").read_text())
    namespace = KUSTOMIZATION["namespace"]
    discovered = {}
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            for fqdn in sd["names"]:
                service, ns, svc = fqdn.split(".")
                assert (ns, svc) == (namespace, "svc")
                discovered[service] = (job["job_name"], sd["port"])
    services = of_kind("Service")
    for name, doc in app_deployments().items():
        job, port = discovered[f"{name}-metrics"]
        headless = services[f"{name}-metrics"]["spec"]
        assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"]
        assert headless["selector"] == doc["spec"]["selector"]["matchLabels"]
        assert port == metrics_port(doc, monkeypatch)
        assert name.startswith(job)
    assert len(discovered) == len(app_deployments())


def test_the_setup_job_asks_for_three_replicas_whatever_brokers_answer_first(monkeypatch):
    from local_stack.topics import replication_factor

    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", config_env()["TOPIC_REPLICATION_FACTOR"])
    assert replication_factor(brokers=1) == 3
