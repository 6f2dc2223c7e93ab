"""Every Grafana dashboard parses, and every panel asks for metrics some service really exports
(read from the services' own registries), never grouped by a per-site or per-run label. The
queries are run against a real Prometheus in tests/e2e/test_observability.py."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
PROMQL_WORDS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "rate",
    "increase",
    "delta",
    "deriv",
    "histogram_quantile",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "absent",
    "time",
    "vector",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "by",
    "without",
    "offset",
}
# Series Prometheus makes itself rather than scrapes from a service.
PROMETHEUS_OWN = {"up"}


def exported_metric_names() -> set[str]:
    """Every sample name the four services' registries can expose (with _total, _bucket...),
    the gateway's webhooks process (a registry of its own) included."""
    from api_gateway import metrics as gateway
    from api_gateway.webhooks import metrics as webhooks
    from log_sink import metrics as log_sink
    from orchestrator import metrics as orchestrator
    from stage_workers import metrics as workers

    names: set[str] = set()
    for module in (gateway, webhooks, log_sink, orchestrator, workers):
        names |= set(module.REGISTRY._names_to_collectors)  # declared metrics, with suffixes
        # and what collectors without a declaration (process_*) really expose
        names |= {s.name for family in module.REGISTRY.collect() for s in family.samples}
    return names


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def metrics_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: words outside strings, label matchers,
    grouping clauses and range selectors that are neither functions nor keywords."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\boffset\s+\w+", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {w for w in words - PROMQL_WORDS if not re.fullmatch(r"e\d*|Inf|NaN", w)}


def panels(path: Path) -> list[dict]:
    return [p for p in json.loads(path.read_text())["panels"] if p["type"] != "row"]


def test_the_three_dashboards_are_there():
    assert {p.name for p in DASHBOARDS} >= {"pipeline.json", "kafka.json", "api.json"}
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_an_exported_metric(path):
    exported = exported_metric_names() | PROMETHEUS_OWN
    found = panels(path)
    assert len(found) >= 6
    for panel in found:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metrics_in(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            unknown = names - exported
            assert not unknown, f"{path.name} / {panel['title']}: {unknown} exported by no service"


def test_the_api_dashboard_shows_the_webhooks_process():
    exprs = [
        target["expr"]
        for panel in panels(ROOT / "deploy" / "grafana" / "dashboards" / "api.json")
        for target in panel["targets"]
    ]
    assert {name for expr in exprs for name in metrics_in(expr)} >= {
        "automation_webhook_attempts_total",
        "automation_webhook_attempt_seconds_bucket",
        "automation_webhook_deliveries_pending",
        "automation_webhook_oldest_due_seconds",
        "automation_webhook_deliveries_enqueued_total",
        "automation_webhook_lost_leases_total",
        "automation_webhook_attempts_in_flight",
    }
    assert any('job="api-gateway-webhooks"' in e and "service_ready" in e for e in exprs)
    assert any("automation-webhooks" in e and "consumer_lag" in e for e in exprs)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_no_panel_groups_by_site_or_run(path):
    text = path.read_text()
    assert "site_id" not in text and "run_id" not in text


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_rule_reads_exported_metrics_or_recorded_signals(path):
    known = exported_metric_names() | recorded_names() | PROMETHEUS_OWN
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            names = metrics_in(rule["expr"])
            assert names, rule
            assert not names - known, f"{rule.get('alert') or rule['record']}: {names - known}"


def test_the_metric_name_reader_sees_through_promql():
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(a_seconds_bucket{x="y"}[5m])))'
        " / on () b_total offset 5m or vector(0)"
    )
    assert metrics_in(expr) == {"a_seconds_bucket", "b_total"}
