"""Every AI call a unit made, written with the unit's result (or on its own when the unit
ends otherwise): what it used, how long it took, how it ended, and what it cost."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import Envelope
from contracts.values import ItemRef
from stage_workers import metrics
from stage_workers.gate.calls import CallRecord

# Built once: building a statement costs SQLAlchemy more CPU than running it, and this runs
# with every item.
_RECORD = t.ai_calls.insert()


def record_calls(
    conn: Connection, command: Envelope, refs: Sequence[ItemRef], records: Sequence[CallRecord]
) -> None:
    if not records:
        return
    batch = command.data
    conn.execute(
        _RECORD,
        [
            {
                "account_id": command.account_id,
                "site_id": command.site_id,
                "run_id": batch.run_id,
                "stage": batch.stage,
                "batch_id": batch.batch_id,
                "item_id": refs[0].id if len(refs) == 1 else None,
                "items": len(refs),
                "provider": r.provider,
                "function": r.function,
                "model_requested": r.model_requested,
                "model_answered": r.usage.model if r.usage else None,
                "input_tokens": r.usage.input_tokens if r.usage else 0,
                "output_tokens": r.usage.output_tokens if r.usage else 0,
                "cached_tokens": r.usage.cached_tokens if r.usage else 0,
                "images": r.usage.images if r.usage else 0,
                "image_size": r.usage.image_size if r.usage else None,
                "latency_ms": r.latency_ms,
                "waited_ms": r.waited_ms,
                "outcome": r.outcome,
                "attempt": r.attempt,
                "error": r.error,
                "cost_usd": r.cost_usd,
                "price_version": r.price_version,
            }
            for r in records
        ],
    )
    metrics.count_calls(records)
