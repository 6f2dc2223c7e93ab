"""Bytes on the wire <-> envelopes. Anything that cannot be read raises UnreadableMessage,
whose reason is what goes to the dead-letter topic."""

from __future__ import annotations

import json

from pydantic import ValidationError

from contracts.envelope import CONTENT_TYPE, Envelope
from contracts.registry import REGISTRY, Registry


class UnreadableMessage(ValueError):
    """The record is not a message this system can read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: Envelope) -> bytes:
    return message.model_dump_json(by_alias=True).encode()


def kafka_headers(message: Envelope) -> list[tuple[str, bytes]]:
    """Structured-mode CloudEvents header, plus the type so routers need not parse the body."""
    return [("content-type", CONTENT_TYPE.encode()), ("ce_type", message.type.encode())]


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
