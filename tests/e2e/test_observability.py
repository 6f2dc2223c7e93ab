"""A real Prometheus scrapes the four services (separate processes, and the gateway's webhooks
process) through a whole run started over the REST API: every query of the dashboards and of
the alert rules is valid PromQL and answers, the items-processed series agrees with the run, no
alert fires on a healthy run, and a poison record on a stage topic makes the dead-letter alert
fire."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from tests.support.gateway import make_tenant
from tests.support.kafka import publish_raw
from tests.support.parallel import SHARED_ROWS
from tests.support.pipeline import Pipeline, sample_keywords
from tests.support.prometheus import (
    Prometheus,
    alerting_rules,
    dashboard_queries,
    recording_rules,
)
from tests.support.services import free_port

pytestmark = [pytest.mark.integration, SHARED_ROWS]

KEYWORDS = 20
# Panels whose query is empty on a healthy system, and why. Every other query must answer.
EMPTY_WHEN_HEALTHY = {
    'sum by (route) (rate(automation_gateway_requests_total{status=~"5.."}[5m]))': (
        "server errors by route: there are no 5xx responses to show"
    ),
}
# Alerts that must not fire on the healthy run (all of them, before the fault).
DEAD_LETTER_ALERT = "AutomationDeadLetters"


class NotYet(AssertionError):
    pass


def eventually(seconds: float = 60):
    return retry(
        retry=retry_if_exception_type(NotYet),
        stop=stop_after_delay(seconds),
        wait=wait_fixed(0.5),
        reraise=True,
    )


@pytest.fixture
def running(services, tmp_path):
    """The four services and the webhooks process, a gateway URL, and a Prometheus scraping them
    every second."""
    port = free_port()
    orchestrator = services.start(
        "orchestrator", "orchestrator", env={"TICK_SECONDS": "0.2"}, timeout=90
    )
    workers = services.start("stage-workers", "stage-worker", timeout=90)
    log_sink = services.start("log-sink", "log-sink", timeout=90)
    gateway = services.start("api-gateway", "api-gateway", env={"GATEWAY_PORT": str(port)})
    webhooks = services.start("api-gateway-webhooks", "api-gateway", "webhooks", timeout=90)
    prometheus = Prometheus(
        tmp_path / "prometheus",
        targets={
            "orchestrator": [orchestrator.metrics_port],
            "stage-workers": [workers.metrics_port],
            "log-sink": [log_sink.metrics_port],
            "api-gateway": [gateway.metrics_port],
            "api-gateway-webhooks": [webhooks.metrics_port],
        },
        # The shipped rule waits 1 minute; the test needs the signal, not the patience.
        rule_overrides={DEAD_LETTER_ALERT: "0s"},
    ).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", prometheus=prometheus)
    prometheus.stop()


async def test_prometheus_scrapes_a_run_and_the_dead_letter_alert_fires(
    db, running, kafka_bootstrap, topics
):
    prometheus: Prometheus = running.prometheus
    wait_until_every_target_is_up(prometheus)

    # A whole run, started and watched over the REST API.
    tenant = make_tenant(db, running, credits=100_000)
    rows = [k.model_dump() for k in sample_keywords(KEYWORDS)]
    run_id = tenant.import_and_run(rows)
    state = await Pipeline(kafka_bootstrap, topics).finished(run_id, timeout=300)
    assert state.status == "completed", state.error
    for call in ("/current_run", "/history", "/estimate", "/pipeline_overview"):
        assert tenant.get(call, site_id=tenant.site_id).status_code == 200
    assert tenant.get("/logs", run_id="not a run id").status_code == 400  # a 4xx for the panels

    # The items-processed series is the run's count, per stage and in all.
    processed = {str(s.number): s.processed_count for s in state.stages if s.processed_count}
    assert sum(processed.values()) >= KEYWORDS
    wait_for_series(
        prometheus,
        'sum by (stage) (stage_worker_items_total{outcome="processed"})',
        {stage: float(n) for stage, n in processed.items()},
    )
    wait_for_series(
        prometheus,
        "sum by (status, trigger) (automation_runs_finished_total) > 0",
        {("completed", "manual"): 1.0},
        labels=("status", "trigger"),
    )
    wait_until_rules_evaluated(prometheus)

    # Every dashboard and rule query is valid and answers.
    for dashboard, title, expr in dashboard_queries():
        result = prometheus.query(expr)
        if expr in EMPTY_WHEN_HEALTHY:
            assert result == [], f"{dashboard} / {title}: expected empty on a healthy run"
        else:
            assert result, f"{dashboard} / {title}: no data for {expr}"
    for rule in recording_rules():
        assert prometheus.query(rule["expr"]), f"{rule['record']}: no data for {rule['expr']}"
        assert prometheus.query(rule["record"]), f"{rule['record']} was not recorded"
    for rule in alerting_rules():
        # valid, and silent: nothing is wrong with this run
        assert prometheus.query(rule["expr"]) == [], f"{rule['alert']} fires on a healthy run"
    assert not [a for a in prometheus.alerts() if a["state"] == "firing"]

    # A poison record on a stage topic goes to the dead-letter topic, and the alert fires.
    poisoned = topics.stage(3)
    await publish_raw(kafka_bootstrap, poisoned, b"this is not a CloudEvent")
    alert = wait_for_alert(prometheus, DEAD_LETTER_ALERT)
    assert alert["labels"]["topic"] == poisoned
    assert prometheus.value(f'sum(automation_dead_letters_total{{topic="{poisoned}"}})') == 1.0
    rule = next(r for r in prometheus.rules() if r.get("name") == DEAD_LETTER_ALERT)
    assert rule["state"] == "firing"


@eventually(30)
def wait_until_every_target_is_up(prometheus: Prometheus) -> None:
    health = prometheus.targets_up()
    if len(health) != 5 or set(health.values()) != {"up"}:
        raise NotYet(f"targets: {health}")


@eventually(60)
def wait_for_series(
    prometheus: Prometheus, expr: str, expected: dict, labels: tuple[str, ...] = ("stage",)
) -> None:
    found = {}
    for series in prometheus.query(expr):
        key = tuple(series["metric"].get(label) for label in labels)
        found[key[0] if len(key) == 1 else key] = float(series["value"][1])
    if found != expected:
        raise NotYet(f"{expr}: {found} != {expected}")


@eventually(60)
def wait_until_rules_evaluated(prometheus: Prometheus) -> None:
    health = {r.get("name"): (r["health"], r.get("lastError")) for r in prometheus.rules()}
    bad = {name: h for name, h in health.items() if h[0] != "ok"}
    if bad:
        raise NotYet(f"rules not evaluated cleanly: {bad}")


@eventually(90)
def wait_for_alert(prometheus: Prometheus, name: str) -> dict:
    for alert in prometheus.alerts():
        if alert["labels"]["alertname"] == name and alert["state"] == "firing":
            return alert
    raise NotYet(f"{name} not firing: {prometheus.alerts()}")
