"""The Grafana dashboard only asks for metrics some service really exports, and never groups by
a per-site or per-run label."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "pipeline.json"
SUFFIXES = ("_bucket", "_count", "_sum")
# A metric made with prometheus_client's classes or the services' registry-bound partials.
PATTERN = re.compile(r'(?:Counter|Gauge|Histogram|counter|gauge|histogram)\(\s*"([a-z_]+)"')
PROMQL_WORDS = {
    "sum",
    "rate",
    "increase",
    "by",
    "le",
    "histogram_quantile",
    "outcome",
    "stage",
    "type",
    "route",
    "status",
    "target",
    "job",
    "instance",
}


def exported_metric_names() -> set[str]:
    names = set()
    for source in (ROOT / "services").rglob("*.py"):
        names |= set(re.findall(PATTERN, source.read_text()))
    return names


def test_every_panel_queries_an_exported_metric():
    exported = exported_metric_names()
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len(panels) >= 10
    for panel in panels:
        for target in panel["targets"]:
            words = set(re.findall(r"[a-z_]{4,}", target["expr"])) - PROMQL_WORDS
            metrics = {
                w
                for w in words
                if w.endswith(("_total", "_seconds", "_runs", "_ready", "_records", "_bucket"))
            }
            assert metrics, panel["title"]
            for metric in metrics:
                base = next(
                    (metric.removesuffix(s) for s in SUFFIXES if metric.endswith(s)), metric
                )
                assert base in exported, f"{panel['title']}: {metric} is exported by no service"


def test_no_panel_groups_by_site_or_run():
    text = DASHBOARD.read_text()
    assert "site_id" not in text and "run_id" not in text
