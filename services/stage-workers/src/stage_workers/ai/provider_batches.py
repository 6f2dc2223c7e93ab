"""The provider's batch interface (OpenAI's Batch API) as a port: a JSONL file of requests is
uploaded, a batch is created from it, and within 24 hours its output and error files hold one
answer per request, matched by `custom_id`, at half the price of the same calls made alone.
The adapter that speaks to OpenAI is `openai_batches`; this module needs no SDK."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stage_workers.ai.openai_provider import Request

ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
# The provider's limits on one batch (platform.openai.com/docs/guides/batch): 50,000 requests
# and a 200 MB input file. A file is cut a little below the size, for the JSON framing.
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 190_000_000


@dataclass(frozen=True)
class BatchState:
    """What the provider says of one batch."""

    id: str
    status: str
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED


@dataclass(frozen=True)
class Line:
    """One line of an output or error file: the answer's body, or why there is none."""

    custom_id: str
    status_code: int | None  # None: never executed (expired, cancelled)
    body: dict[str, Any] | None
    error: str | None


class BatchInterface(Protocol):
    async def upload(self, filename: str, content: bytes) -> str: ...

    async def find(self, name: str) -> BatchState | None:
        """A batch created with `metadata.name == name`, if the provider has one."""

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> BatchState: ...

    async def retrieve(self, batch_id: str) -> BatchState: ...

    async def lines(self, file_id: str) -> list[Line]: ...

    async def cancel(self, batch_id: str) -> None: ...


def request_line(custom_id: str, request: Request) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": request.endpoint}
    return json.dumps(line | {"body": request.body}, separators=(",", ":")).encode() + b"\n"


def parse_line(raw: dict[str, Any]) -> Line:
    response = raw.get("response") or {}
    error = raw.get("error") or (response.get("body") or {}).get("error")
    message = None
    if error:
        message = f"{error.get('code') or error.get('type') or 'error'}: {error.get('message')}"
    return Line(raw["custom_id"], response.get("status_code"), response.get("body"), message)
