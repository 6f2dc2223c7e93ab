"""The Batch API of the test provider: `/v1/files` (upload with `purpose=batch`, retrieve, content)
and `/v1/batches` (create, retrieve, list, cancel), as OpenAI serves them.

A batch is answered from the same content as the synchronous calls (so an economy run and a
standard run of the same keywords get the same outputs) but draws on no rate limit, as the real
Batch API has a pool of its own. Time is the fake's clock: a batch is `in_progress` from its
creation and `completed` once `completion_seconds` have passed, when it is next looked at. What can
go wrong is steered per fake:
  - `failing_ids`: custom ids answered with a 500 in the error file;
  - `expire_after`: a batch expires at its deadline with only this many requests done, the rest in
    the error file with `batch_expired`;
  - a cancel: `cancelling`, then `cancelled` with what was done by then (nothing, unless the
    batch was already due);
  - `refuse_creates`, `lose_created`: a create refused (nothing made), or made with its answer
    lost, as a crash or a dropped connection between the two would leave it;
  - `webhook`: (url, secret) to which `batch.completed` (or `.expired`, `.cancelled`, `.failed`)
    is sent, signed as Standard Webhooks (OpenAI's own webhooks are), once the batch ends; with
    a webhook, a batch ends when it is due whether or not anyone looks.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from standardwebhooks.webhooks import Webhook

ENDPOINTS = ("/v1/chat/completions", "/v1/images/generations")
MAX_REQUESTS = 50_000
WINDOW = "24h"
ENDED = ("completed", "expired", "cancelled", "failed")


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def document(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class Batch:
    id: str
    endpoint: str
    input_file_id: str
    requests: list[dict]
    metadata: dict[str, str]
    created_at: float  # the fake's clock
    due_at: float
    status: str = "in_progress"
    ended_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    cancel_asked: bool = False


def error_body(message: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def multipart(content_type: str, data: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + data)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class FakeBatches:
    """Files and batches of one fake provider. `answer(path, body)` gives a request's response
    body (the synchronous calls' content); `clock` is the fake's."""

    def __init__(self, answer: Callable[[str, dict], dict], clock: Callable[[], float]) -> None:
        self._answer = answer
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        self.completion_seconds = 0.0
        self.failing_ids: set[str] = set()
        self.expire_after: int | None = None
        self.webhook: tuple[str, str] | None = None
        self.created = self.answered = 0  # batches created, requests answered in them
        # Creation going wrong: refused with a 503 (nothing created) while `refuse_creates` is
        # set; made, but answered with a 503 (the answer lost), for the next `lose_created`.
        self.refuse_creates = False
        self.lose_created = 0

    # --- HTTP ------------------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return path.startswith(("/v1/files", "/v1/batches"))

    def get(self, path: str) -> tuple[int, dict | bytes]:
        route, _, query = path.partition("?")
        parts = route.strip("/").split("/")[1:]  # without "v1"
        with self._lock:
            if parts == ["batches"]:
                return 200, self._list(dict(p.split("=", 1) for p in query.split("&") if p))
            if len(parts) == 2 and parts[0] == "batches" and parts[1] in self.batches:
                return 200, self._document(self._advance(self.batches[parts[1]]))
            if len(parts) >= 2 and parts[0] == "files" and parts[1] in self.files:
                stored = self.files[parts[1]]
                return 200, stored.content if parts[2:] == ["content"] else stored.document()
        return 404, error_body(f"No such object: {route}")

    def post(self, path: str, content_type: str, data: bytes) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]
        if parts == ["files"]:
            return self._upload(content_type, data)
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            return 400, error_body("We could not parse the JSON body of your request.")
        with self._lock:
            if parts == ["batches"]:
                return self._create(body)
            if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel":
                batch = self.batches.get(parts[1])
                if batch is None:
                    return 404, error_body(f"No batch {parts[1]}")
                return self._cancel(batch)
        return 404, error_body(f"Invalid URL (POST {path})")

    # --- Files and batches -----------------------------------------------------------------------

    def _upload(self, content_type: str, data: bytes) -> tuple[int, dict]:
        if not content_type.startswith("multipart/form-data"):
            return 400, error_body("Expected multipart/form-data with `file` and `purpose`.")
        fields = multipart(content_type, data)
        if "file" not in fields or "purpose" not in fields:
            return 400, error_body("Missing `file` or `purpose`.")
        purpose = fields["purpose"][1].decode()
        with self._lock:
            stored = self._store(fields["file"][0] or "upload.jsonl", purpose, fields["file"][1])
        return 200, stored.document()

    def _store(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(
            f"file-{next(self._ids):06d}", filename, purpose, content, int(time.time())
        )
        self.files[stored.id] = stored
        return stored

    def _create(self, body: dict) -> tuple[int, dict]:
        unavailable = 503, error_body("The service is temporarily unavailable.", "server_error")
        if self.refuse_creates:
            return unavailable
        status, answer = self._make(body)
        if status == 200 and self.lose_created > 0:
            self.lose_created -= 1
            return unavailable
        return status, answer

    def _make(self, body: dict) -> tuple[int, dict]:
        stored = self.files.get(str(body.get("input_file_id")))
        if stored is None or stored.purpose != "batch":
            return 400, error_body("input_file_id must name a file uploaded with purpose=batch")
        if body.get("endpoint") not in ENDPOINTS or body.get("completion_window") != WINDOW:
            return 400, error_body(
                f"endpoint must be one of {ENDPOINTS}, completion_window {WINDOW}"
            )
        try:
            requests = [json.loads(line) for line in stored.content.splitlines() if line.strip()]
        except ValueError:
            return 400, error_body("The input file is not JSONL.")
        ids = [r.get("custom_id") for r in requests]
        if len(requests) > MAX_REQUESTS or len(set(ids)) != len(ids) or None in ids:
            return 400, error_body("custom_id must be given, and unique, on at most 50,000 lines")
        if any(r.get("url") != body["endpoint"] for r in requests):
            return 400, error_body("every line's url must be the batch's endpoint")
        now = self._clock()
        batch = Batch(
            id=f"batch_{next(self._ids):06d}",
            endpoint=body["endpoint"],
            input_file_id=stored.id,
            requests=requests,
            metadata={str(k): str(v) for k, v in (body.get("metadata") or {}).items()},
            created_at=now,
            due_at=now + self.completion_seconds,
        )
        self.batches[batch.id] = batch
        self.created += 1
        if self.webhook is not None:  # the provider tells when it is done, unasked
            ending = threading.Timer(self.completion_seconds + 0.05, self._end_due, (batch,))
            ending.daemon = True
            ending.start()
        return 200, self._document(batch)

    def now(self) -> float:
        return self._clock()

    def _end_due(self, batch: Batch) -> None:
        with self._lock:
            self._advance(batch)

    def _cancel(self, batch: Batch) -> tuple[int, dict]:
        self._advance(batch)
        if batch.status in ENDED:
            return 409, error_body(f"Cannot cancel a batch with status {batch.status}.")
        batch.cancel_asked, batch.status = True, "cancelling"
        return 200, self._document(batch)

    def _advance(self, batch: Batch) -> Batch:
        """Bring the batch to where the clock says it is."""
        if batch.status in ENDED:
            return batch
        now = self._clock()
        if batch.cancel_asked:
            done = len(batch.requests) if now >= batch.due_at else 0
            self._end(batch, "cancelled", done)
        elif now >= batch.due_at:
            if self.expire_after is not None and self.expire_after < len(batch.requests):
                self._end(batch, "expired", self.expire_after)
            else:
                self._end(batch, "completed", len(batch.requests))
        return batch

    def _end(self, batch: Batch, status: str, done: int) -> None:
        outputs, errors = [], []
        for n, request in enumerate(batch.requests):
            custom_id = request["custom_id"]
            line: dict[str, Any] = {"id": f"batch_req_{batch.id}_{n}", "custom_id": custom_id}
            if n >= done:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                message = f"This request could not be executed before the batch was {status}."
                errors.append(
                    {**line, "response": None, "error": {"code": code, "message": message}}
                )
            elif custom_id in self.failing_ids:
                body = error_body(
                    "The server had an error processing your request.", "server_error"
                )
                response = {"status_code": 500, "request_id": f"req_{n}", "body": body}
                errors.append({**line, "response": response, "error": None})
            else:
                self.answered += 1
                answer = self._answer(request["url"], request.get("body") or {})
                response = {"status_code": 200, "request_id": f"req_{n}", "body": answer}
                outputs.append({**line, "response": response, "error": None})
        if outputs:
            batch.output_file_id = self._store(
                f"{batch.id}_output.jsonl", "batch_output", _jsonl(outputs)
            ).id
        if errors:
            batch.error_file_id = self._store(
                f"{batch.id}_error.jsonl", "batch_output", _jsonl(errors)
            ).id
        failed = sum(1 for e in errors if e["response"] is not None)
        batch.counts = {"total": len(batch.requests), "completed": len(outputs), "failed": failed}
        batch.status, batch.ended_at = status, self._clock()
        if self.webhook is not None:
            threading.Thread(target=self._notify, args=(batch,), daemon=True).start()

    def _notify(self, batch: Batch) -> None:
        url, secret = self.webhook or ("", "")
        payload = {
            "object": "event",
            "id": f"evt_{batch.id}",
            "type": f"batch.{batch.status}",
            "created_at": int(time.time()),
            "data": {"id": batch.id},
        }
        data = json.dumps(payload)
        message_id, now = f"wh_{batch.id}", datetime.now(UTC)
        signature = Webhook(secret).sign(message_id, now, data)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        request = urllib.request.Request(url, data.encode(), headers, method="POST")
        with contextlib.suppress(OSError):  # a receiver that is down: polling finds the end anyway
            urllib.request.urlopen(request, timeout=5).close()

    def _list(self, query: dict[str, str]) -> dict:
        newest_first = sorted(self.batches.values(), key=lambda b: b.id, reverse=True)
        if after := query.get("after"):
            newest_first = [b for b in newest_first if b.id < after]
        limit = int(query.get("limit", 20))
        page = [self._document(self._advance(b)) for b in newest_first[:limit]]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest_first) > limit,
        }

    def _document(self, batch: Batch) -> dict:
        wall = time.time() - self._clock()  # the fake's clock as Unix seconds
        at = int(batch.created_at + wall)
        ended = {f"{batch.status}_at": int(batch.ended_at + wall)} if batch.ended_at else {}
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": WINDOW,
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": at,
            "in_progress_at": at,
            "expires_at": at + 24 * 3600,
            "request_counts": batch.counts
            or {"total": len(batch.requests), "completed": 0, "failed": 0},
            "metadata": batch.metadata or None,
            **ended,
        }


def _jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)
