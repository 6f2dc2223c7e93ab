"""The series every service declares alike come from one factory, under the names and labels the
dashboards and alerts query."""

from __future__ import annotations

from prometheus_client import generate_latest

from contracts.metrics import ServiceMetrics


def _exposed(metrics: ServiceMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_each_service_has_a_registry_of_its_own() -> None:
    first, second = ServiceMetrics(ready="first"), ServiceMetrics(ready="second")
    first.ready.set(1)
    assert "automation_service_ready 1.0" in _exposed(first)
    assert "automation_service_ready 0.0" in _exposed(second)


def test_lag_and_dead_letters_exist_once_asked_for() -> None:
    metrics = ServiceMetrics(ready="ready")
    assert "automation_consumer_lag_records" not in _exposed(metrics)
    assert "automation_dead_letters_total" not in _exposed(metrics)

    metrics.reads(["topic-a", "topic-b"])
    metrics.consumer_lag.labels("group-a", "topic-a").set(3)
    exposed = _exposed(metrics)
    assert 'automation_dead_letters_total{topic="topic-a"} 0.0' in exposed
    assert 'automation_dead_letters_total{topic="topic-b"} 0.0' in exposed
    assert 'automation_consumer_lag_records{group="group-a",topic="topic-a"} 3.0' in exposed
    assert metrics.dead_letters is metrics.dead_letters
