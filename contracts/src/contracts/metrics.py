"""One service process's Prometheus metrics: a registry of its own, with the series every service
declares alike (readiness, consumer lag, dead letters), and the monitor thread that polls the
looked-up ones.

Each process gets its own registry, so that services imported into one process (the test suite)
do not clash on the names they share. Those names and labels are what the Grafana dashboards and
the alert rules (deploy/, tests/prometheus/) query: change them there too or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from contracts.monitor import ConsumerLag, Monitor, Probe


class ServiceMetrics:
    """`ready` says what readiness means for the service (the gauge's help text). The consumer
    lag gauge and the dead-letter counter exist once asked for, so a process that has neither
    (the gateway's API) exports neither."""

    def __init__(self, ready: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.ready = self.gauge("automation_service_ready", ready)

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)

    @cached_property
    def consumer_lag(self) -> Gauge:
        return self.gauge(
            "automation_consumer_lag_records",
            "Records between a consumer group's committed offsets and the end of the topic",
            ["group", "topic"],
        )

    @cached_property
    def dead_letters(self) -> Counter:
        return self.counter(
            "automation_dead_letters_total",
            "Records this service could not read and sent to the dead-letter topic, by source "
            "topic",
            ["topic"],
        )

    def reads(self, topics: Iterable[str]) -> None:
        """The topics whose unreadable records this service sends to the dead-letter topic:
        their series exist from the start, at zero, so increase() sees the first one."""
        for topic in topics:
            self.dead_letters.labels(topic)

    def watch(self, bootstrap: str, groups: Mapping[str, Sequence[str]], *probes: Probe) -> Monitor:
        """Start polling the lag of `groups` (group -> its topics), and any other probes."""
        lag = ConsumerLag(bootstrap, groups, self.consumer_lag)
        return Monitor([lag, *probes]).start()
