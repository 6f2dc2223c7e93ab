"""GET runs/{run_id}/events: a run's events as server-sent events, pushed as they arrive.

Events seen since the gateway started replay first, then new ones follow in stream order; the
stream ends after the run's last event. Each SSE `id` is the event's position in the run, so a
reconnecting client sends `Last-Event-ID` and gets only what it missed. An id this gateway
cannot have given (it restarted since) replays everything it has, rather than nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from api_gateway.auth import CallerDep
from api_gateway.db import run_of
from api_gateway.errors import not_found
from api_gateway.event_hub import RUN_ENDINGS, RunEventHub
from api_gateway.params import RunIdPath
from contracts.envelope import Envelope
from contracts.state import FINISHED

router = APIRouter(tags=["live"])
KEEPALIVE_SECONDS = 15.0
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event (before OpenAPI 3.2, `schema` describes each event).",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "Position of the event in the run."},
        "event": {"type": "string", "description": "The run event's type."},
        "data": {"type": "string", "description": "JSON: {type, time, run_id, data}."},
        "retry": {"type": "integer"},
    },
}
SSE_DOC = {
    200: {
        "description": "One SSE event per run event, in stream order; ends with the run.",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }
}


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def sse(position: int, message: Envelope) -> str:
    data = {
        "type": message.type,
        "time": message.time.isoformat(),
        "run_id": message.run_id,
        "data": message.data.model_dump(mode="json"),
    }
    return f"id: {position}\nevent: {message.type}\ndata: {json.dumps(data)}\n\n"


def _last_seen(last_event_id: str | None) -> int:
    try:
        return int(last_event_id) if last_event_id else 0
    except ValueError:
        return 0


async def _stream(
    hub: RunEventHub, run_id: str, owner: tuple[int, int], finished_status: str | None, after: int
) -> AsyncIterator[str]:
    backlog, queue = hub.subscribe(run_id, *owner)
    if after > len(backlog):
        # Positions count the events this gateway has seen; a larger one was handed out by
        # another instance (this one restarted since), so it says nothing here: start over.
        after = 0
    try:
        yield ": stream of run " + run_id + "\n\n"
        position = 0
        for message in backlog:
            position += 1
            if position > after:
                yield sse(position, message)
            if message.type in RUN_ENDINGS:
                return
        if finished_status is not None:
            yield f"event: run.finished\ndata: {json.dumps({'status': finished_status})}\n\n"
            return
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            position += 1
            if position > after:
                yield sse(position, message)
            if message.type in RUN_ENDINGS:
                return
    finally:
        hub.unsubscribe(run_id, queue)


@router.get(
    "/runs/{run_id}/events",
    response_class=EventStreamResponse,
    responses=SSE_DOC,
    summary="Live events of a run (server-sent events)",
)
async def run_events(
    request: Request,
    caller: CallerDep,
    run_id: RunIdPath,
    last_event_id: str | None = Header(None, max_length=20),
) -> EventStreamResponse:
    hub: RunEventHub = request.app.state.hub
    async with request.app.state.engine.connect() as conn:
        run = await run_of(conn, caller, run_id)
    if run is not None:
        owner = (caller.account_id, run.site_id)
    else:
        owner = hub.owner_of(run_id)
        if owner is None or owner[0] != caller.account_id:
            raise not_found(f"run {run_id}")
    finished = run.status if run is not None and run.status in FINISHED else None
    stream = _stream(hub, run_id, owner, finished, _last_seen(last_event_id))
    return EventStreamResponse(stream, headers={"Cache-Control": "no-cache"})
