"""The provider's batch interface (OpenAI's Batch API): a JSONL file of requests is uploaded,
a batch is created from it, and within 24 hours its output and error files hold one answer per
request, matched by `custom_id`, at half the price of the same calls made alone. Errors are
classified as the provider's calls' are (openai_provider.classify)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

import openai
from openai import AsyncOpenAI

from stage_workers.ai.base import PermanentAIError
from stage_workers.ai.openai_provider import Request, classify

WINDOW = "24h"
ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
# The provider's limits on one batch (platform.openai.com/docs/guides/batch): 50,000 requests
# and a 200 MB input file. A file is cut a little below the size, for the JSON framing.
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 190_000_000
# How far back a restarted worker looks for a batch it may have created before recording it.
FIND_LIMIT = 200


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


class OpenAIBatches:
    def __init__(self, client: AsyncOpenAI) -> None:
        self.client = client

    async def upload(self, filename: str, content: bytes) -> str:
        created = await self._do(
            self.client.files.create(file=(filename, content), purpose="batch")
        )
        return created.id

    async def find(self, name: str) -> BatchState | None:
        async def scan() -> BatchState | None:
            seen = 0
            async for batch in self.client.batches.list(limit=100):
                if (batch.metadata or {}).get("name") == name:
                    return _state(batch)
                seen += 1
                if seen >= FIND_LIMIT:
                    return None
            return None

        return await self._do(scan())

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> BatchState:
        batch = await self._do(
            self.client.batches.create(
                input_file_id=file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window=WINDOW,
                metadata=metadata,
            )
        )
        return _state(batch)

    async def retrieve(self, batch_id: str) -> BatchState:
        return _state(await self._do(self.client.batches.retrieve(batch_id)))

    async def lines(self, file_id: str) -> list[Line]:
        content = await self._do(self.client.files.content(file_id))
        return [_line(json.loads(raw)) for raw in content.content.splitlines() if raw.strip()]

    async def cancel(self, batch_id: str) -> None:
        with contextlib.suppress(openai.ConflictError):  # it ended: nothing is left to cancel
            await self._do(self.client.batches.cancel(batch_id))

    @staticmethod
    async def _do(call: Any) -> Any:
        try:
            return await call
        except openai.ConflictError:
            raise
        except openai.NotFoundError as error:  # a file or batch the provider no longer has
            raise PermanentAIError(f"NotFoundError: {error}") from error
        except openai.OpenAIError as error:
            raise classify(error) from error


def _state(batch: Any) -> BatchState:
    counts = batch.request_counts
    return BatchState(
        batch.id,
        batch.status,
        counts.completed if counts else 0,
        counts.failed if counts else 0,
        batch.output_file_id,
        batch.error_file_id,
    )


def _line(raw: dict[str, Any]) -> Line:
    response = raw.get("response") or {}
    error = raw.get("error") or (response.get("body") or {}).get("error")
    message = None
    if error:
        message = f"{error.get('code') or error.get('type') or 'error'}: {error.get('message')}"
    return Line(raw["custom_id"], response.get("status_code"), response.get("body"), message)
