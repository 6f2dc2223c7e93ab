"""The AsyncAPI 3.0 document of the whole message system, generated from the contracts.

`python -m contracts.asyncapi` prints it; the committed copy (contracts/asyncapi.json) is checked
against this generator by the unit tests, so it cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from contracts import topics
from contracts.codec import LEGACY_TYPE_HEADER, TYPE_HEADER
from contracts.commands import RUN_COMMANDS, STAGE_COMMANDS
from contracts.dead_letter import TYPE as DEAD_LETTER_TYPE
from contracts.dead_letter import DeadLetterMessage
from contracts.envelope import CONTENT_TYPE, Envelope, Payload
from contracts.events import RUN_EVENTS
from contracts.tracing import TRACEPARENT, TRACESTATE

SCHEMA_PREFIX = "#/components/schemas/"


def _message_name(cls: type[BaseModel]) -> str:
    return cls.__name__


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    """JSON Schemas of the models, their nested definitions hoisted into components."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(by_alias=True, ref_template=SCHEMA_PREFIX + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _envelope_for(payload: type[Payload]) -> dict[str, Any]:
    """The envelope schema with `data` narrowed to one payload and `type` fixed."""
    envelope = Envelope.model_json_schema(by_alias=True, ref_template=SCHEMA_PREFIX + "{model}")
    envelope.pop("$defs", None)
    envelope["title"] = f"{payload.__name__}Message"
    properties = envelope["properties"]
    properties["type"] = {"const": payload.TYPE, "type": "string"}
    properties["dataversion"] = {"const": payload.VERSION, "type": "integer"}
    properties["data"] = {"$ref": SCHEMA_PREFIX + payload.__name__}
    return envelope


HEADERS = "StructuredModeHeaders"


def _structured_mode_headers() -> dict[str, Any]:
    """The Kafka headers every record carries: structured mode, no `ce_` header (ADR 18), and
    the trace context (ADR 20)."""
    return {
        "type": "object",
        "description": "Structured content mode of the CloudEvents Kafka protocol binding: the "
        "value is the whole event. No header starts with `ce_`: CloudEvents SDKs read a record "
        "with any `ce_` header as binary mode.",
        "properties": {
            "content-type": {"const": CONTENT_TYPE, "type": "string"},
            TYPE_HEADER: {
                "type": "string",
                "description": "The CloudEvents `type` again, so that a router can filter "
                "without parsing the value. Records written before ADR 18 carry "
                f"`{LEGACY_TYPE_HEADER}` instead.",
            },
            TRACEPARENT: {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C Trace Context of the span that produced the record "
                "(ADR 20). The trace of a run's records is the run's own, its id derived from "
                "the run id; records written before tracing have none.",
            },
            TRACESTATE: {
                "type": "string",
                "description": "W3C Trace Context vendor state, when the trace has any.",
            },
        },
        "required": ["content-type", TYPE_HEADER],
        "propertyNames": {"not": {"pattern": "^[cC][eE]_"}},
    }


def _headers(type_: str) -> dict[str, Any]:
    return {
        "allOf": [
            {"$ref": SCHEMA_PREFIX + HEADERS},
            {"properties": {TYPE_HEADER: {"const": type_}}},
        ]
    }


def _channel_messages(payloads: tuple[type[Payload], ...]) -> dict[str, Any]:
    return {p.__name__: {"$ref": f"#/components/messages/{p.__name__}"} for p in payloads}


def build() -> dict[str, Any]:
    payloads = [*RUN_COMMANDS, *STAGE_COMMANDS, *RUN_EVENTS]
    schemas = _schemas([*payloads, DeadLetterMessage])
    schemas[HEADERS] = _structured_mode_headers()
    for payload in payloads:
        schemas[f"{payload.__name__}Message"] = _envelope_for(payload)
    messages: dict[str, Any] = {
        p.__name__: {
            "name": p.TYPE,
            "title": p.__name__,
            "summary": (p.__doc__ or p.TYPE).strip().splitlines()[0],
            "contentType": CONTENT_TYPE,
            "headers": _headers(p.TYPE),
            "payload": {"$ref": f"{SCHEMA_PREFIX}{p.__name__}Message"},
        }
        for p in payloads
    }
    messages["DeadLetter"] = {
        "name": DEAD_LETTER_TYPE,
        "title": "DeadLetter",
        "summary": "A record a consumer could not read, as it came, and why.",
        "contentType": CONTENT_TYPE,
        "headers": _headers(DEAD_LETTER_TYPE),
        "payload": {"$ref": SCHEMA_PREFIX + "DeadLetterMessage"},
    }
    channels: dict[str, Any] = {
        "runCommands": {
            "address": topics.RUN_COMMANDS,
            "messages": _channel_messages(RUN_COMMANDS),
        },
        "runEvents": {"address": topics.RUN_EVENTS, "messages": _channel_messages(RUN_EVENTS)},
        "deadLetter": {
            "address": topics.DEAD_LETTER,
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        },
    }
    for n in topics.STAGE_NUMBERS:
        channels[f"stage{n}Commands"] = {
            "address": topics.stage_commands(n),
            "messages": _channel_messages(STAGE_COMMANDS),
        }
    for channel in channels.values():
        spec = next(t for t in topics.TOPICS if t.name == channel["address"])
        channel["description"] = f"{spec.purpose}. Partitions: {spec.partitions}."
    operations = {
        "sendRunCommand": _op("send", "runCommands", "Gateway and scheduler ask for a run change."),
        "receiveRunCommand": _op("receive", "runCommands", "The orchestrator decides on it."),
        "receiveRunEvents": _op(
            "receive",
            "runEvents",
            "Folded by every service that needs run state; open to any subscriber.",
        ),
        "sendRunEvents": _op("send", "runEvents", "Orchestrator and stage workers record facts."),
        "sendDeadLetter": _op("send", "deadLetter", "Any consumer parks what it cannot read."),
    }
    for n in topics.STAGE_NUMBERS:
        operations[f"receiveStage{n}Commands"] = _op(
            "receive", f"stage{n}Commands", f"Stage {n} workers take batches."
        )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Content automation messages",
            "version": "1.0.0",
            "description": "Run commands, stage commands, run events and dead letters of the "
            "content-automation pipeline. Every record on every topic is a CloudEvents 1.0 event "
            "in the structured content mode of the CloudEvents Kafka binding: the value is the "
            "event as JSON, the `content-type` header is `application/cloudevents+json`, the "
            "`type` header repeats the event type, and no header starts with `ce_`, so SDKs that "
            "detect the mode (binary when any `ce_` header is present) read every record. The "
            "W3C `traceparent` header carries the trace context: one trace per run (ADR 20).",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "The local stack (deploy/local).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _op(action: str, channel: str, summary: str) -> dict[str, Any]:
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
