"""The OpenAI adapter of the provider's batch interface (`provider_batches.BatchInterface`).
Errors are classified as the provider's calls' are (openai_provider.classify)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import openai
from openai import AsyncOpenAI

from stage_workers.ai.base import PermanentAIError
from stage_workers.ai.openai_provider import classify
from stage_workers.ai.provider_batches import BatchState, Line, parse_line

WINDOW = "24h"
# How far back a restarted worker looks for a batch it may have created before recording it.
FIND_LIMIT = 200


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
        return [parse_line(json.loads(raw)) for raw in content.content.splitlines() if raw.strip()]

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
