"""One attempt over HTTP: POST the body with its headers, no redirects followed, connect within
5 s, everything within 15 s, at most RESPONSE_CAP bytes of the answer read.

The connection goes through `CheckedBackend`: it resolves the host, judges every address
(`addresses.checked_addresses`) and connects to the address it judged, so DNS that answers
differently between a check and the connection gains nothing. TLS still verifies the
certificate against the URL's host name. httpcore (httpx's transport layer) is used directly
because httpx has no way to put a network backend under its transport; it follows no redirects,
reads no proxy settings from the environment, and leaves Host and Content-Length to us.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass

import httpcore

from api_gateway.webhooks.addresses import (
    AddressError,
    AddressPolicy,
    RefusedAddress,
    Resolve,
    Target,
    Unresolvable,
    check_url,
    checked_addresses,
    system_resolve,
)
from api_gateway.webhooks.retry import ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, Answer

RESPONSE_CAP = 4096  # bytes of an answer's body read, for the delivery log
USER_AGENT = "content-automation-webhooks/1"


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, the ones it checked."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolve: Resolve = system_resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolve = resolve
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = Target(url="", scheme="", host=host, port=port)
        addresses = await checked_addresses(target, self.policy, self.resolve)
        failure: Exception = Unresolvable(f"{host} resolved to no address")
        for address in addresses:  # in the resolver's order, the next when one fails
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("a webhook goes over TCP, not a local socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def new_pool(
    policy: AddressPolicy,
    max_connections: int,
    resolve: Resolve = system_resolve,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> httpcore.AsyncConnectionPool:
    """Connections are not kept alive: every attempt connects anew, so every attempt is checked
    against what DNS says then."""
    return httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(),
        max_connections=max_connections,
        max_keepalive_connections=0,
        http1=True,
        http2=False,
        retries=0,
        network_backend=CheckedBackend(policy, resolve, inner),
    )


@dataclass(frozen=True)
class Sent:
    """What an attempt got, for the retry rules (`answer`) and the delivery log."""

    answer: Answer
    outcome: str  # `delivered`, `failed` or `refused` (webhook_attempts.outcome)
    latency_ms: int
    response: str | None = None


async def send(
    pool: httpcore.AsyncConnectionPool,
    url: str,
    headers: dict[str, str],
    body: bytes,
    policy: AddressPolicy,
    clock: Callable[[], float] = time.monotonic,
    timeout: float = ATTEMPT_TIMEOUT.total_seconds(),
) -> Sent:
    started = clock()

    def elapsed_ms() -> int:
        return max(0, round((clock() - started) * 1000))

    try:
        target = check_url(url, policy)
    except RefusedAddress as exc:
        return Sent(Answer(None, error=exc.reason), "refused", 0)
    request_headers = [
        ("host", host_header(target)),
        ("user-agent", USER_AGENT),
        ("content-length", str(len(body))),
        *headers.items(),
    ]
    limits = {"connect": CONNECT_TIMEOUT.total_seconds(), "read": timeout, "write": timeout}
    status: int | None = None
    retry_after: str | None = None
    read = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async with pool.stream(
                "POST",
                url,
                headers=request_headers,
                content=body,
                extensions={"timeout": {**limits, "pool": timeout}},
            ) as response:
                status = response.status
                retry_after = _header(response.headers, b"retry-after")
                async for chunk in response.aiter_stream():
                    read += chunk[: RESPONSE_CAP - len(read)]
                    if len(read) >= RESPONSE_CAP:
                        break
    except RefusedAddress as exc:
        return Sent(Answer(None, error=exc.reason), "refused", elapsed_ms())
    except AddressError as exc:
        return Sent(Answer(None, error=exc.reason), "failed", elapsed_ms())
    except (TimeoutError, httpcore.TimeoutException):
        if status is None:
            error = f"no answer within {timeout:g} s"
            return Sent(Answer(None, error=error), "failed", elapsed_ms())
        # The status came in time; only the body was slow. The status is what counts.
    except (httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError, OSError) as exc:
        if status is None:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return Sent(Answer(None, error=error), "failed", elapsed_ms())
    answer = Answer(status, retry_after=retry_after)
    outcome = "delivered" if answer.delivered else "failed"
    return Sent(answer, outcome, elapsed_ms(), _excerpt(bytes(read)) if read else None)


def _excerpt(read: bytes) -> str:
    """The answer's first bytes as text the attempt's row can hold: PostgreSQL's text refuses
    NUL, and a refused write would leave the delivery to be sent again, unrecorded, forever."""
    return read.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
