"""The names the worker tracks its work by: its consumer names. The deterministic ids of the
events it writes (a redelivered command writes the same ids, so the outbox dedupes them) are
named in contracts.ids with everyone else's."""

from __future__ import annotations


def consumer_name(stage: int) -> str:
    return f"automation-stage-{stage}"
