"""The Kubernetes manifests are hardened: checkov's Kubernetes checks all pass or are skipped in
the manifest with a reason; the processes can write where they need to although every root
filesystem is read-only; and the network policies allow the flows of the architecture and
nothing else. checkov runs from its own venv, which deploy/local/bootstrap.sh installs."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import DEPLOY, IMAGE, K8S, container, documents, environment

ROOT = DEPLOY.parent
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_REQUIREMENTS = DEPLOY / "local" / "checkov-requirements.txt"
SKIP_ANNOTATION = re.compile(r"checkov\.io/skip\d+")
# What the manifests may skip. Anything else is fixed, or added here in a reviewed change.
SKIPPABLE = {
    "CKV_K8S_43": "images by digest: the release pins them",
    "CKV_K8S_15": "pull policy Always: moot once images are pinned by digest",
    "CKV_K8S_35": "secrets as files: the services read DATABASE_URL from the environment",
    "CKV_K8S_40": "uid 10000 or more: only PostgreSQL, whose data its image's user owns",
}
# Failures don't change the exit code (the JSON says), and nothing is fetched from the network.
CHECKOV_OPTIONS = ["--output", "json", "--compact", "--quiet", "--soft-fail", "--skip-download"]
WORKLOADS = ("Deployment", "StatefulSet", "Job")
DOCUMENTS = [doc for _, doc in documents()]
POLICIES = [doc["spec"] for doc in DOCUMENTS if doc["kind"] == "NetworkPolicy"]


def checkov_version() -> str:
    [version] = re.findall(r"^checkov==(\S+)$", CHECKOV_REQUIREMENTS.read_text(), re.MULTILINE)
    return version


def test_checkov_finds_no_failed_kubernetes_check():
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make bootstrap` (deploy/local/bootstrap.sh)")
    ran = subprocess.run(
        [CHECKOV, "--directory", K8S, "--framework", "kubernetes", *CHECKOV_OPTIONS],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    summary = report["summary"]
    failed = [
        f"{r['check_id']} {r['resource']} ({r['file_path']}): {r['check_name']}"
        for r in report["results"].get("failed_checks", [])
    ]
    assert summary["checkov_version"] == checkov_version(), "run `make bootstrap` again"
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= len(DOCUMENTS) - 1  # the Namespace has no checks
    assert summary["failed"] == 0, "\n".join(failed)


def skips() -> list[tuple[str, str, str]]:
    """(resource, check id, reason) for every checkov skip annotation in the manifests."""
    found = []
    for doc in DOCUMENTS:
        for key, value in doc["metadata"].get("annotations", {}).items():
            if SKIP_ANNOTATION.fullmatch(key):
                check, _, reason = value.partition("=")
                found.append((f"{doc['kind']}/{doc['metadata']['name']}", check, reason))
    return found


def test_every_skipped_check_is_one_we_accept_and_gives_its_reason():
    assert skips()
    for resource, check, reason in skips():
        assert check in SKIPPABLE, f"{resource} skips {check}: fix it, or accept it here"
        # checkov splits the annotation at "=": a second one breaks the scan
        assert len(reason) > 30 and "=" not in reason, f"{resource} {check}: {reason!r}"
    assert {r for r, check, _ in skips() if check == "CKV_K8S_40"} == {"StatefulSet/postgres"}


def workloads() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] in WORKLOADS}


def writable(workload: dict) -> set[str]:
    return {m["mountPath"] for m in container(workload)["volumeMounts"] if not m.get("readOnly")}


def test_our_processes_can_write_where_they_write_on_a_read_only_root():
    ours = {n: w for n, w in workloads().items() if container(w)["image"].startswith(IMAGE)}
    for name, workload in ours.items():
        assert container(workload)["securityContext"]["readOnlyRootFilesystem"], name
        assert "/tmp" in writable(workload), name
    assert environment(ours["log-sink"])["LOG_BASE_DIR"] in writable(ours["log-sink"])
    assert environment(ours["stage-workers-images"])["MEDIA_DIR"] in writable(
        ours["stage-workers-images"]
    )
    stack_home = Path(environment(ours["automation-setup"])["STACK_HOME"])
    assert any(stack_home.is_relative_to(path) for path in writable(ours["automation-setup"]))


def test_kafka_and_postgres_have_volumes_where_they_write():
    kafka, postgres = workloads()["kafka"], workloads()["postgres"]
    env = {e["name"]: e.get("value") for e in container(kafka)["env"]}
    assert {env["KAFKA_LOG_DIRS"], "/opt/kafka/config", "/opt/kafka/logs"} <= writable(kafka)
    [copy] = kafka["spec"]["template"]["spec"]["initContainers"]
    assert copy["image"] == container(kafka)["image"]
    env = {e["name"]: e.get("value") for e in container(postgres)["env"]}
    assert Path(env["PGDATA"]).parent in {Path(p) for p in writable(postgres)}
    assert "/var/run/postgresql" in writable(postgres)


# --- network policies ------------------------------------------------------------------------

INTERNET = ipaddress.ip_address("203.0.113.7")  # an address outside the cluster
PRIVATE = ipaddress.ip_address("10.1.2.3")  # the cluster's or the cloud's own networks
METADATA = ipaddress.ip_address("169.254.169.254")


@dataclass
class Peer:
    """One end of a connection: a pod of this namespace, of another one, or an address."""

    name: str
    labels: dict = field(default_factory=dict)
    namespace: dict | None = None  # its namespace's labels; None: this namespace
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


DNS = Peer("kube-dns", {"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})


def selects(selector: dict, labels: dict) -> bool:
    wanted = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        value, values = labels.get(key), expression.get("values", [])
        wanted &= {
            "In": value in values,
            "NotIn": value not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
    return wanted


def matches(rule_peer: dict, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        return peer.address is not None and (
            peer.address in ipaddress.ip_network(block["cidr"])
            and not any(peer.address in ipaddress.ip_network(e) for e in block.get("except", []))
        )
    if peer.address is not None:
        return False
    if "namespaceSelector" in rule_peer:
        in_namespace = peer.namespace is not None and selects(
            rule_peer["namespaceSelector"], peer.namespace
        )
    else:
        in_namespace = peer.namespace is None
    return in_namespace and selects(rule_peer.get("podSelector", {}), peer.labels)


def admits(direction: str, pod: Peer, other: Peer, port: int, protocol: str) -> bool:
    """Whether the policies that select `pod` let it talk to `other` in that direction."""
    if pod.address is not None or pod.namespace is not None:
        return True  # outside this namespace: its policies are not ours
    rules, peers = {"Ingress": ("ingress", "from"), "Egress": ("egress", "to")}[direction]
    policies = [
        policy
        for policy in POLICIES
        if direction in policy["policyTypes"] and selects(policy["podSelector"], pod.labels)
    ]
    return not policies or any(
        (peers not in rule or any(matches(peer, other) for peer in rule[peers]))
        and (
            "ports" not in rule
            or any((p["port"], p.get("protocol", "TCP")) == (port, protocol) for p in rule["ports"])
        )
        for policy in policies
        for rule in policy.get(rules, [])
    )


def allowed(source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    return admits("Egress", source, target, port, protocol) and admits(
        "Ingress", target, source, port, protocol
    )


def pods() -> dict[str, Peer]:
    return {
        name: Peer(name, w["spec"]["template"]["metadata"]["labels"])
        for name, w in workloads().items()
    }


def ports(name: str) -> set[int]:
    return {p["containerPort"] for p in container(workloads()[name]).get("ports", [])}


def scrape_targets() -> set[tuple[str, int]]:
    """(workload, port) for everything Prometheus is configured to scrape."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.k8s.yml").read_text())
    return {
        (fqdn.split(".")[0].removesuffix("-metrics"), sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for fqdn in sd["names"]
    }


def expected_flows() -> set[tuple[str, str, int]]:
    """The architecture's connections: (from, to, port); "internet" is outside the cluster."""
    clients = {n for n, w in workloads().items() if container(w)["image"].startswith(IMAGE)}
    workers = {n for n in clients if n.startswith("stage-workers-")}
    return (
        {(client, "kafka", 9092) for client in clients}
        | {(client, "postgres", 5432) for client in clients}
        | {("kafka", "kafka", 9092), ("kafka", "kafka", 9093)}
        | {("internet", "api-gateway", 8000)}
        | {("prometheus", name, port) for name, port in scrape_targets()}
        | {("grafana", "prometheus", 9090)}
        | {(worker, "internet", 443) for worker in workers}
        | {("api-gateway-webhooks", "internet", 443)}  # customers' endpoints (ADR 19)
    )


def test_the_namespace_denies_by_default():
    assert {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]} in POLICIES


def test_network_policies_allow_exactly_the_architectures_flows():
    peers = {**pods(), "internet": Peer("internet", address=INTERNET)}
    expected = expected_flows()
    assert {end for flow in expected for end in flow[:2]} <= set(peers)
    for target, target_peer in peers.items():
        # the ports it listens on, and any that a flow expects it to (a missing listener is
        # the other tests' business)
        listening = {443, 80} if target == "internet" else ports(target)
        listening |= {port for _, to, port in expected if to == target}
        for source, source_peer in peers.items():
            if source == target == "internet":
                continue
            for port in listening:
                flow = (source, target, port)
                assert allowed(source_peer, target_peer, port) == (flow in expected), flow


@pytest.mark.parametrize("name", sorted(pods()))
def test_every_pod_resolves_names_and_reaches_no_private_address(name):
    pod = pods()[name]
    assert allowed(pod, DNS, 53, "UDP") and allowed(pod, DNS, 53, "TCP")
    for address in (PRIVATE, METADATA):
        assert not allowed(pod, Peer("private", address=address), 443)


def test_webhooks_reach_public_https_only():
    webhooks = pods()["api-gateway-webhooks"]
    assert allowed(webhooks, Peer("internet", address=INTERNET), 443)
    assert not allowed(webhooks, Peer("internet", address=INTERNET), 80)
    for private in (
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",  # shared (carrier-grade NAT)
        "169.254.170.2",  # link-local: cloud metadata
        "127.0.0.1",
        "fd00:ec2::254",  # unique local: a cloud's IPv6 metadata address
        "fe80::1",
    ):
        address = ipaddress.ip_address(private)
        assert not allowed(webhooks, Peer("private", address=address), 443), private
    # the API's pods, which anyone reaches, get no way out to the internet
    assert not allowed(pods()["api-gateway"], Peer("internet", address=INTERNET), 443)
