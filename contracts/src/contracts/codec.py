"""Bytes on the wire <-> envelopes. Anything that cannot be read raises UnreadableMessage,
whose reason is what goes to the dead-letter topic.

Every record is a CloudEvent in structured mode (ADR 18): the value is the whole event, the
`content-type` header says so, and no header starts with `ce_`. The CloudEvents Kafka binding
reserves `ce_` headers for binary mode, and SDKs (the Python one among them) read any record that
has one as binary, so a `ce_` header beside a structured value makes them misread it. The type
travels in a plain `type` header, so that routers can filter without parsing the value. The W3C
`traceparent` (and `tracestate`) header carries the trace context of the span that produced the
record (contracts.tracing, ADR 20).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from contracts import tracing
from contracts.envelope import CONTENT_TYPE, Envelope
from contracts.registry import REGISTRY, Registry


class UnreadableMessage(ValueError):
    """The record is not a message this system can read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: Envelope) -> bytes:
    return message.model_dump_json(by_alias=True).encode()


TYPE_HEADER = "type"
# Records written before ADR 18 carry the type as `ce_type`; they stay on the topics (run events
# are kept forever) and in unpublished outbox rows, so readers accept both names.
LEGACY_TYPE_HEADER = "ce_type"
BINARY_MODE_PREFIX = "ce_"

Headers = Iterable[tuple[str, bytes]]


def headers_for(type_: str) -> list[tuple[str, bytes]]:
    """The headers of a structured-mode record of this type."""
    return [("content-type", CONTENT_TYPE.encode()), (TYPE_HEADER, type_.encode())]


def kafka_headers(message: Envelope) -> list[tuple[str, bytes]]:
    """The headers of the record that carries `message`, produced now: structured mode, and
    the trace context of the span producing it, in the run's trace."""
    return headers_for(message.type) + tracing.headers(message.run_id)


def type_from_headers(headers: Headers | None) -> str | None:
    """The message type a record's headers name (new or legacy header), without the value."""
    for name, value in headers or ():
        if name in (TYPE_HEADER, LEGACY_TYPE_HEADER):
            return value.decode(errors="replace")
    return None


def structured_headers(headers: Headers) -> list[tuple[str, bytes]]:
    """Headers stored by an older release (outbox rows) as they are sent now: the legacy type
    header renamed, and no `ce_` header left to flip a CloudEvents reader into binary mode."""
    sent = []
    for name, value in headers:
        if name == LEGACY_TYPE_HEADER:
            sent.append((TYPE_HEADER, value))
        elif not name.lower().startswith(BINARY_MODE_PREFIX):
            sent.append((name, value))
    return sent


def decode(raw: bytes | str | None, registry: Registry = REGISTRY) -> Envelope:
    if raw is None:
        raise UnreadableMessage("empty record (no value)")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableMessage(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UnreadableMessage("not a JSON object")
    type_ = document.get("type")
    payload_class = registry.payload_class(type_) if isinstance(type_, str) else None
    if payload_class is None:
        raise UnreadableMessage(f"unknown message type {type_!r}")
    version = document.get("dataversion")
    data = document.get("data")
    if not isinstance(version, int) or not isinstance(data, dict):
        raise UnreadableMessage("missing dataversion or data object")
    try:
        data = registry.upcast(type_, version, data)
        payload = payload_class.model_validate(data)
        return Envelope.model_validate(
            {**document, "dataversion": payload_class.VERSION, "data": payload}
        )
    except (ValidationError, ValueError) as exc:
        raise UnreadableMessage(f"invalid {type_} v{version}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
    return str(exc)
