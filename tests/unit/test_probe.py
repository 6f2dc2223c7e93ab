"""The readiness probe the Kubernetes manifests run reads the real metrics endpoint."""

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from contracts.probe import main
from tests.support.services import free_port


def test_ready_only_when_the_gauge_says_so():
    registry = CollectorRegistry()
    ready = Gauge("automation_service_ready", "readiness", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        ready.set(0)
        assert main([url]) == 1
        ready.set(1)
        assert main([url]) == 0
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_not_ready_when_nothing_answers():
    assert main([f"http://127.0.0.1:{free_port()}/metrics"]) == 1
