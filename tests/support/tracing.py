"""Tracing on for one test, into the SDK's in-memory exporter; off again afterwards, as every
other test expects (ADR 20)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts import tracing


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(tracing.provider("tests", SimpleSpanProcessor(exporter)))
    try:
        yield exporter
    finally:
        tracing.install(None)
