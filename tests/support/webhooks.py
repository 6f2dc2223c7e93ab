"""Webhook receivers on real sockets, and endpoints written straight into their table.

The receiver verifies every request with the `standardwebhooks` package from PyPI, never with
the project's own signing code, and keeps the effect of each `webhook-id` once, as the spec
asks a receiver to: `effects` is what a consumer would have acted on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api_gateway.webhooks.signing import new_secret
from contracts.db import tables as t


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def document(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers the n-th request with `statuses[n]` (the last one once they run out); a request
    while `hold` is set waits until it is cleared (a receiver that is slow to answer)."""

    secret: str
    statuses: list[int] = field(default_factory=lambda: [200])
    got: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        n = len(self.got)
        self.got.append(Received(headers, body, verified))
        if self.hold.is_set():
            self.released.wait(timeout=60)
        return self.statuses[min(n, len(self.statuses) - 1)]

    @property
    def effects(self) -> dict[str, dict]:
        """Each webhook-id's document once, from the verified requests that were answered 2xx."""
        done: dict[str, dict] = {}
        for n, request in enumerate(self.got):
            status = self.statuses[min(n, len(self.statuses) - 1)]
            if request.verified and 200 <= status < 300:
                done.setdefault(request.id, request.document)
        return done

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.got if r.document["type"] == type_]


@contextmanager
def serving(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()


def add_endpoint(
    engine: sa.Engine,
    account_id: int,
    url: str,
    event_types: list[str],
    site_ids: list[int] | None = None,
    secret: str | None = None,
) -> tuple[int, str]:
    """An endpoint with one secret, as the API would create it; (its id, the secret)."""
    secret = secret or new_secret()
    with engine.begin() as conn:
        endpoint_id = conn.execute(
            sa.insert(t.webhook_endpoints)
            .values(account_id=account_id, url=url, event_types=event_types, site_ids=site_ids)
            .returning(t.webhook_endpoints.c.id)
        ).scalar_one()
        conn.execute(sa.insert(t.webhook_secrets).values(endpoint_id=endpoint_id, secret=secret))
    return endpoint_id, secret


class Endpoints:
    """Endpoints a test adds, deleted with their deliveries when it ends, so no later test's
    delivery loop sends them (a later receiver could even get a leftover's port)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.added: list[int] = []

    def add(self, account_id: int, url: str, event_types: list[str], **kwargs) -> tuple[int, str]:
        endpoint_id, secret = add_endpoint(self.engine, account_id, url, event_types, **kwargs)
        self.added.append(endpoint_id)
        return endpoint_id, secret

    def remove_all(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(t.webhook_endpoints).where(t.webhook_endpoints.c.id.in_(self.added))
            )


def deliveries(engine: sa.Engine, endpoint_id: int) -> list[sa.Row]:
    d = t.webhook_deliveries.c
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.webhook_deliveries)
            .where(d.endpoint_id == endpoint_id)
            .order_by(d.created_at)
        ).all()


def attempts(engine: sa.Engine, delivery_id: object) -> list[sa.Row]:
    a = t.webhook_attempts.c
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.webhook_attempts).where(a.delivery_id == delivery_id).order_by(a.attempt)
        ).all()
