"""Send a run command to the orchestrator and wait for its verdict on the run events."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from datetime import datetime

from aiokafka import AIOKafkaProducer
from fastapi import Request

from api_gateway import metrics
from api_gateway.errors import ApiError
from api_gateway.event_hub import RunEventHub
from api_gateway.request_spans import route_template
from contracts import tracing
from contracts.codec import encode, kafka_headers
from contracts.envelope import Envelope, Payload, new_message, utcnow
from contracts.values import Trigger, make_run_id

SOURCE = "/automation/api-gateway"


def new_run_id(now: datetime | None = None, trigger: Trigger = "manual") -> str:
    return make_run_id(trigger, now or utcnow(), secrets.token_hex(3))


class CommandSender:
    def __init__(
        self, producer: AIOKafkaProducer, hub: RunEventHub, topic: str, timeout: float
    ) -> None:
        self.producer = producer
        self.hub = hub
        self.topic = topic
        self.timeout = timeout

    @metrics.counted_command
    async def ask(
        self, payload: Payload, *, account_id: int, site_id: int, run_id: str
    ) -> Envelope:
        """Publish the command and return the event that answers it (504 if none comes)."""
        command = new_message(
            payload, source=SOURCE, account_id=account_id, site_id=site_id, run_id=run_id
        )
        answer = self.hub.expect(command.message_id)
        try:
            with tracing.sending(self.topic, command):
                await self.producer.send_and_wait(
                    self.topic, encode(command), key=command.key, headers=kafka_headers(command)
                )
            return await asyncio.wait_for(answer, self.timeout)
        except TimeoutError:
            raise ApiError(
                504,
                f"the orchestrator did not answer within {self.timeout:g} s; the command "
                f"{command.message_id} was sent and may still take effect",
                code="timeout",
            ) from None
        finally:
            self.hub.forget(command.message_id)


@contextlib.contextmanager
def request_span(request: Request, run_id: str, *, starts_run: bool = False) -> Iterator[None]:
    """The SERVER span of a run-command request, in the run's trace: its root when the request
    starts the run (ADR 20). A trace the client sent (`traceparent`) is linked. A refusal
    (4xx) is an answer, not an error of the span; a 5xx (the orchestrator's silence) is."""
    if not tracing.enabled():
        yield
        return
    route = route_template(request.scope) or request.url.path
    name = f"{request.method} {route}"
    options = {
        "kind": tracing.SpanKind.SERVER,
        "attributes": {
            "http.request.method": request.method,
            "http.route": route,
            "url.path": request.url.path,
            "automation.run.id": run_id,
        },
        "links": tracing.links_to(request.headers),
    }
    opened = (
        tracing.starting_run(run_id, name, **options)
        if starts_run
        else tracing.in_run(name, run_id, **options)
    )
    refused: ApiError | None = None
    with opened as span:
        try:
            yield
        except ApiError as error:
            refused = error
            span.set_attribute("http.response.status_code", error.status_code)
            if error.status_code >= 500:
                span.set_attribute("error.type", str(error.status_code))
                span.set_status(tracing.StatusCode.ERROR, str(error))
        else:
            span.set_attribute("http.response.status_code", 200)
    if refused is not None:
        raise refused
