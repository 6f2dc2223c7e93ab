"""Refuse a request body past the limit as soon as it is known to be too large: at once when
its declared Content-Length says so, else as soon as the bytes streamed in pass the limit, so a
huge upload never sits in memory whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_gateway.errors import ErrorBody

MAX_BODY_BYTES = 5 * 1024 * 1024


class BodyTooLarge(Exception):
    """Raised into the app from `receive`; no handler takes it, so it comes back out here."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except* BodyTooLarge:  # a task group in a middleware below may wrap it in a group
            if started:
                raise
            await _refuse(send, self.max_bytes)


async def _refuse(send: Send, limit: int) -> None:
    body = ErrorBody(
        detail=f"the request body is larger than {limit} bytes", field="body", code="too_large"
    )
    payload = body.model_dump_json(exclude_none=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
