"""A webhook receiver played by an httpcore network backend: it answers each connection with
the next scripted response and keeps the requests it got, so the client and the attempt are
tested without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpcore
import pytest
import standardwebhooks.webhooks as reference

REASONS = {200: "OK", 204: "No Content", 307: "Temporary Redirect", 410: "Gone", 503: "X"}


def http(status: int, *headers: str, body: bytes = b"") -> bytes:
    reason = REASONS.get(status, "Too Many Requests" if status == 429 else "X")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Request:
    line: str
    headers: dict[str, str]
    body: bytes


class _Stream(httpcore.AsyncMockStream):
    def __init__(self, answer: list[bytes], written: list[bytes], hang: bool) -> None:
        super().__init__(answer)
        self.written = written
        self.hang = hang

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.hang:
            await asyncio.Event().wait()  # a receiver that never answers
        return await super().read(max_bytes, timeout)


class Receiver(httpcore.AsyncMockBackend):
    """Each connection gets the next of `answers` (the last one again when they run out)."""

    def __init__(self, *answers: bytes, hang: bool = False, refuse: Sequence[str] = ()) -> None:
        super().__init__([])
        self.answers = list(answers)
        self.connected: list[tuple[str, int]] = []
        self.streams: list[list[bytes]] = []
        self.hang = hang
        self.refuse = set(refuse)

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"connection refused by {host}")
        answer = self.answers.pop(0) if len(self.answers) > 1 else (self.answers or [b""])[0]
        written: list[bytes] = []
        self.streams.append(written)
        return _Stream([answer], written, self.hang)

    @property
    def requests(self) -> list[Request]:
        parsed = []
        for written in self.streams:
            head, _, body = b"".join(written).partition(b"\r\n\r\n")
            line, *fields = head.decode().split("\r\n")
            parsed.append(Request(line, dict(f.split(": ", 1) for f in fields), body))
        return parsed


def resolver(**table: Sequence[str]):
    async def resolve(host: str, port: int) -> Sequence[str]:
        return table[host]

    return resolve


class ReceiverClock(datetime):
    """The clock `standardwebhooks` checks a timestamp against: this one, set by the tests."""

    at: datetime

    @classmethod
    def now(cls, tz=None):
        return cls.at.astimezone(tz)


def hold_receiver_clock(monkeypatch: pytest.MonkeyPatch, at: datetime) -> type[ReceiverClock]:
    """Make the verifier's now `at` for the test (move it with `.at = ...`)."""
    monkeypatch.setattr(reference, "datetime", ReceiverClock)
    monkeypatch.setattr(ReceiverClock, "at", at, raising=False)
    return ReceiverClock
