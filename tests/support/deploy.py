"""The deployment files as the tests read them, to check them against the code: the services'
settings classes and the environment names they read, the workspace's console scripts, and the
Kubernetes manifests with the containers and environment of their workloads."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer
import yaml
from pydantic_settings import BaseSettings

from api_gateway.settings import Settings as GatewaySettings
from log_sink.settings import Settings as LogSinkSettings
from orchestrator.settings import Settings as OrchestratorSettings
from stage_workers.settings import WorkerSettings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
IMAGE = "content-automation"
SETTINGS: dict[str, type[BaseSettings]] = {
    "orchestrator": OrchestratorSettings,
    "stage-worker": WorkerSettings,
    "log-sink": LogSinkSettings,
    "api-gateway": GatewaySettings,
}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Environment names a settings class reads: field names and their aliases."""
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        names |= {str(choice).upper() for choice in choices} or {name.upper()}
    return names


def subcommands(script: str) -> set[str]:
    """The subcommands a console script takes (only the gateway's has any: `webhooks`)."""
    if script != "api-gateway":
        return set()
    from api_gateway.app import cli

    return set(typer.main.get_command(cli).commands)


def console_scripts() -> set[str]:
    scripts = set()
    for pyproject in [*ROOT.glob("services/*/pyproject.toml"), DEPLOY / "local/pyproject.toml"]:
        scripts |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return scripts


def documents() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def app_deployments() -> dict[str, dict]:
    """Deployments running our image, by name, with their one container."""
    return {
        name: doc
        for name, doc in of_kind("Deployment").items()
        if container(doc)["image"].split(":")[0] == IMAGE
    }


def container(workload: dict) -> dict:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    return only


def config_env() -> dict[str, str]:
    return of_kind("ConfigMap")["automation-env"]["data"]


def secret_env() -> dict[str, str]:
    return of_kind("Secret")["automation-database"]["stringData"]


def environment(workload: dict) -> dict[str, str]:
    """What the container sees from the ConfigMap and its own env (the Secret adds the URL)."""
    env = dict(config_env())
    env.update({e["name"]: e["value"] for e in container(workload).get("env", [])})
    return env
