"""GET runs/{run_id}/events: a run's events as server-sent events, pushed as they arrive.

The run's past events are read from the events topic (from its first event, which the read
model locates), then new ones follow from the gateway's hub in stream order; the stream ends
after the run's last event. Each SSE `id` is the event's offset on the topic, the same from
every gateway instance and after restarts, so a reconnecting client sends `Last-Event-ID` and
gets only what it missed. A stream checks every few seconds that its token or console session
still stands, and ends with `stream.ended` once it does not.

Asked with `snapshot=true`, the stream also pushes `run.snapshot` (see live_snapshot): the run
and its current stage as `run` and `current_processing` answer them, folded from the run's
events up to the last one sent. One follows the replayed past and one each live event (or each
burst of events that arrive together); the last follows the run's ending (or precedes
`run.finished`). It carries no `id`, so Last-Event-ID still names the last run event; a
resumed stream folds the events it does not resend. Without the parameter the stream is as it
always was.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api_gateway import metrics
from api_gateway.accounts import Caller
from api_gateway.auth import CallerDep, still_signed_in
from api_gateway.db import run_of
from api_gateway.errors import ApiError, ErrorBody, not_found
from api_gateway.event_hub import FellBehind, Follower, RunEventHub
from api_gateway.live_replay import Replayer
from api_gateway.params import RunIdPath
from api_gateway.routes.live_snapshot import EVENT as SNAPSHOT
from api_gateway.routes.live_snapshot import Folder
from contracts import events as ev
from contracts.envelope import Envelope
from contracts.state import FINISHED

router = APIRouter(tags=["live"])
KEEPALIVE_SECONDS = 15.0
CHECK_SECONDS = 2.0  # how often a stream asks whether its token or session still stands
ENDED = {"reason": "the token was revoked or the session signed out"}
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event (before OpenAPI 3.2, `schema` describes each event).",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "Position of the event in the run."},
        "event": {
            "type": "string",
            "description": "The run event's type; with snapshot=true also `run.snapshot`; "
            "`run.finished` for a finished run, `stream.ended` when the session ended.",
        },
        "data": {
            "type": "string",
            "description": "JSON: {type, time, run_id, data} for a run event; for "
            "`run.snapshot` {run, processing}: the RunDetail and ProcessingState schemas.",
        },
        "retry": {"type": "integer"},
    },
}
SSE_DOC = {
    200: {
        "description": "One SSE event per run event, in stream order; ends with the run.",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    },
    503: {
        "model": ErrorBody,
        "description": "A run so new that its first event is not located yet: try again.",
    },
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


def _resume_from(last_event_id: str | None) -> int:
    """The offset after the one a reconnecting client saw last; 0 (its run's start) when none."""
    try:
        return int(last_event_id) + 1 if last_event_id else 0
    except ValueError:
        return 0


@dataclass(frozen=True)
class Where:
    """Where a run's events are: its partition, and the offset of its first event."""

    partition: int
    first_offset: int


class RunStream:
    """One client's stream of one run: the past from the topic, then the hub's new events."""

    def __init__(
        self, request: Request, caller: Caller, run_id: str, where: Where, snapshot: bool = False
    ) -> None:
        self.request = request
        self.caller = caller
        self.run_id = run_id
        self.where = where
        self.hub: RunEventHub = request.app.state.hub
        self.replayer: Replayer = request.app.state.replayer
        self.next_offset = where.first_offset
        self.folder = Folder() if snapshot else None
        self.folded = where.first_offset  # the offset of the next event to fold
        self.ended = False
        self.checked = self.sent = time.monotonic()

    async def lines(self, finished_status: str | None, after: int) -> AsyncIterator[str]:
        self.next_offset = max(self.next_offset, after)
        reason = "open"
        metrics.LIVE_STREAMS.inc()
        try:
            yield ": stream of run " + self.run_id + "\n\n"
            await self.hub.ready.wait()  # its positions say where the topic's past ends
            while not self.ended:
                follower = self.hub.follow(self.run_id, self.where.partition)
                if self.next_offset > follower.start:
                    # An id past the end of the topic was never handed out: start over.
                    self.next_offset = self.where.first_offset
                try:
                    await self._fold_unsent(min(self.next_offset, follower.start))
                    if self.next_offset < follower.start:
                        metrics.LIVE_REPLAYS.labels(reason).inc()
                        async for line in self._past(follower.start):
                            yield line
                    if self.folder is not None:
                        yield self._snapshot()
                    if not self.ended and finished_status is not None:
                        yield _event("run.finished", {"status": finished_status})
                        return
                    async for line in self._live(follower):
                        yield line
                except FellBehind:
                    reason = "fell_behind"  # read what it missed from the topic, then follow
                finally:
                    self.hub.unfollow(follower)
        finally:
            metrics.LIVE_STREAMS.dec()

    async def _fold_unsent(self, end: int) -> None:
        """Folds the events before the resume point, which the client has and is not resent."""
        if self.folder is None or self.folded >= end:
            return
        past = self.replayer.read(self.run_id, self.where.partition, self.folded, end)
        async with aclosing(past) as events:
            async for offset, message in events:
                self._fold(offset, message)
        self.folded = max(self.folded, end)

    def _fold(self, offset: int, message: Envelope) -> None:
        if self.folder is not None and offset >= self.folded:
            self.folder.add(message)
            self.folded = offset + 1

    def _snapshot(self) -> str:
        assert self.folder is not None
        snapshot = self.folder.snapshot()
        if snapshot is None:
            return ": no snapshot before the run's first event\n\n"
        return f"event: {SNAPSHOT}\ndata: {snapshot.model_dump_json()}\n\n"

    async def _past(self, end: int) -> AsyncIterator[str]:
        past = self.replayer.read(self.run_id, self.where.partition, self.next_offset, end)
        async with aclosing(past) as events:
            async for offset, message in events:
                yield self._sent(offset, message)
                if self.ended:
                    return

    async def _live(self, follower: Follower) -> AsyncIterator[str]:
        while not self.ended:
            arrived = await follower.next(CHECK_SECONDS)
            now = time.monotonic()
            if now - self.checked >= CHECK_SECONDS:
                self.checked = now
                if not await still_signed_in(self.request, self.caller):
                    self.ended = True
                    yield _event("stream.ended", ENDED)
                    return
            if arrived is not None and arrived[0] >= self.next_offset:
                yield self._sent(*arrived)
                if self.folder is not None and not follower.events:
                    yield self._snapshot()  # after the last of the events that came together
            elif arrived is None and now - self.sent >= KEEPALIVE_SECONDS:
                self.sent = now
                yield ": keep-alive\n\n"

    def _sent(self, offset: int, message: Envelope) -> str:
        self._fold(offset, message)
        self.next_offset = offset + 1
        self.sent = time.monotonic()
        self.ended = message.type in ev.RUN_ENDING_TYPES
        return sse(offset, message)


def _event(name: str, data: dict[str, str]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


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
    snapshot: bool = Query(
        False,
        description="Also push `run.snapshot` events: the run and its current stage as `run` "
        "and `current_processing` answer them, after the past and after each live event.",
    ),
) -> EventStreamResponse:
    hub: RunEventHub = request.app.state.hub
    async with request.app.state.engine.connect() as conn:
        run = await run_of(conn, caller, run_id)
    seen = hub.seen(run_id)
    if run is None and (seen is None or seen.account_id != caller.account_id):
        raise not_found(f"run {run_id}")
    finished = run.status if run is not None and run.status in FINISHED else None
    if run is not None and run.first_offset is not None:
        where = Where(run.stream_partition, run.first_offset)
    elif seen is not None:
        # The read model has not caught up with a run that just began (or this gateway saw it
        # begin): its events start where this gateway first saw them.
        where = Where(seen.partition, seen.first_offset)
    elif finished is not None:
        return EventStreamResponse(_finished_only(finished), headers={"Cache-Control": "no-cache"})
    else:
        raise ApiError(503, f"the events of run {run_id} are not located yet; try again shortly")
    stream = RunStream(request, caller, run_id, where, snapshot).lines(
        finished, _resume_from(last_event_id)
    )
    return EventStreamResponse(stream, headers={"Cache-Control": "no-cache"})


async def _finished_only(status: str) -> AsyncIterator[str]:
    """A finished run whose place on the topic is not known (it ended before the read model
    kept it)."""
    yield _event("run.finished", {"status": status})
