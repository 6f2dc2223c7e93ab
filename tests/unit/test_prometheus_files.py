"""The shipped Prometheus files pass promtool (from Debian's prometheus package), and every
alert has a summary and a runbook entry."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIGS = sorted(PROMETHEUS.glob("prometheus.*.yml"))
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: deploy/local/bootstrap.sh installs Debian's prometheus")
    return path


def check(promtool: str, *args: str) -> None:
    done = subprocess.run([promtool, "check", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_promtool_accepts_the_config_and_the_rule_files_it_names(promtool, config):
    assert config.name in {"prometheus.local.yml", "prometheus.compose.yml", "prometheus.k8s.yml"}
    check(promtool, "config", str(config))


def test_promtool_accepts_the_rules(promtool):
    assert RULES
    check(promtool, "rules", *map(str, RULES))


def alerts() -> list[dict]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_the_alerts_the_operators_need_are_there():
    names = {rule["alert"] for rule in alerts()}
    assert names >= {
        "AutomationRunStuck",
        "AutomationConsumerLagGrowing",
        "AutomationDeadLetters",
        "AutomationAIErrorRate",
        "AutomationOutboxBacklogOld",
        "AutomationServiceDown",
        "AutomationWebhooksBehind",
    }


def test_every_alert_has_a_summary_and_a_runbook_entry():
    headings = {
        line.removeprefix("## ").strip()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in alerts():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert rule["alert"] in headings, f"docs/runbook.md has no '## {rule['alert']}'"
        anchor = re.sub(r"[^a-z0-9-]", "", rule["alert"].lower())
        assert annotations["runbook"] == f"docs/runbook.md#{anchor}"
        assert "site_id" not in rule["expr"] and "run_id" not in rule["expr"]


def test_each_alert_fires_on_its_situation_and_not_on_its_healthy_neighbour(promtool):
    """promtool's rule unit tests: made-up series for each alert (tests/prometheus/)."""
    tests = sorted((ROOT / "tests" / "prometheus").glob("*_test.yml"))
    assert tests
    done = subprocess.run(
        [promtool, "test", "rules", *map(str, tests)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {
        case["alertname"]
        for path in tests
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert tested == {rule["alert"] for rule in alerts()}
