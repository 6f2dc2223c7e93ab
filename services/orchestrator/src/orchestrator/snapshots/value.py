"""Snapshots of what the orchestrator folded from one run-events partition, pure: the sites of
the partition and the offset the snapshot covers, to bytes and back, and when the next is due.

A snapshot is a cache of the fold, nothing more: every event before `offset` is in `sites`, so
loading it and folding from `offset` on gives the state a fold from the beginning gives. One that
does not decode (another version, garbage) raises UnreadableSnapshot, and the caller folds from
the beginning instead.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pyrsistent import pmap

from contracts.state_codec import (
    RUN_STATE_VERSION,
    Json,
    UnreadableState,
    run_from_json,
    run_to_json,
    time_from_json,
    time_to_json,
)
from orchestrator.sites import RunNotes, SiteState

# The layout below and what sites.py keeps of a site (finished runs as summaries, what it
# forgets and when). Bump it when either changes: an older snapshot is then ignored.
SNAPSHOT_VERSION = 1


class UnreadableSnapshot(ValueError):
    pass


@dataclass(frozen=True)
class Snapshot:
    partition: int
    offset: int  # the next run-events offset to fold: every event before it is in `sites`
    sites: tuple[SiteState, ...]


def encode(snapshot: Snapshot) -> bytes:
    document = {
        "version": SNAPSHOT_VERSION,
        "run_state_version": RUN_STATE_VERSION,
        "partition": snapshot.partition,
        "offset": snapshot.offset,
        "sites": [_site_to_json(site) for site in snapshot.sites],
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 1)


def decode(body: bytes) -> Snapshot:
    try:
        document = json.loads(zlib.decompress(body))
        versions = (document["version"], document["run_state_version"])
    except (zlib.error, ValueError, TypeError, KeyError) as exc:
        raise UnreadableSnapshot(f"not a snapshot: {exc!r}") from exc
    if versions != (SNAPSHOT_VERSION, RUN_STATE_VERSION):
        raise UnreadableSnapshot(
            f"version {versions}, this orchestrator reads {(SNAPSHOT_VERSION, RUN_STATE_VERSION)}"
        )
    try:
        sites = tuple(_site_from_json(site) for site in document["sites"])
        return Snapshot(document["partition"], document["offset"], sites)
    except (UnreadableState, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnreadableSnapshot(f"not a snapshot: {exc!r}") from exc


def _site_to_json(site: SiteState) -> Json:
    return {
        "site_id": site.site_id,
        "active_run_id": site.active_run_id,
        "runs": [run_to_json(run) for run in site.runs.values()],
        "notes": [[run_id, _notes_to_json(notes)] for run_id, notes in site.notes.items()],
        "handled_commands": [[str(i), time_to_json(t)] for i, t in site.handled_commands.items()],
    }


def _site_from_json(data: Json) -> SiteState:
    runs = (run_from_json(run) for run in data["runs"])
    return SiteState(
        site_id=data["site_id"],
        runs=pmap({run.run_id: run for run in runs}),
        notes=pmap({run_id: _notes_from_json(notes) for run_id, notes in data["notes"]}),
        handled_commands=pmap({UUID(i): time_from_json(t) for i, t in data["handled_commands"]}),
        active_run_id=data["active_run_id"],
    )


def _notes_to_json(notes: RunNotes) -> Json:
    """The notes the stream gives; when StartStage was last sent is a cache, lost as on any
    restart (one early resend at most)."""
    return {
        "correlation_id": _uuid_to_json(notes.correlation_id),
        "batch_done_at": [[n, time_to_json(t)] for n, t in notes.batch_done_at.items()],
        "halted_by": _uuid_to_json(notes.halted_by),
        "halt_reason": notes.halt_reason,
    }


def _notes_from_json(data: Json) -> RunNotes:
    return RunNotes(
        correlation_id=_uuid_from_json(data["correlation_id"]),
        batch_done_at=pmap({n: time_from_json(t) for n, t in data["batch_done_at"]}),
        halted_by=_uuid_from_json(data["halted_by"]),
        halt_reason=data.get("halt_reason"),  # absent from snapshots before it
    )


def _uuid_to_json(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _uuid_from_json(value: Any) -> UUID | None:
    return None if value is None else UUID(value)


@dataclass
class Cadence:
    """When a partition's next snapshot is due: after `every_events` events folded since its
    last one, or `every_seconds` after it if any event came since. Times are monotonic seconds."""

    every_events: int
    every_seconds: float
    folded: dict[int, int] = field(default_factory=dict)
    written_at: dict[int, float] = field(default_factory=dict)

    def start(self, partitions: list[int], now: float) -> None:
        """Partitions just assigned, their state as the newest snapshot has it."""
        for partition in partitions:
            self.folded[partition] = 0
            self.written_at[partition] = now

    def drop(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.folded.pop(partition, None)
            self.written_at.pop(partition, None)

    def fold(self, partition: int) -> None:
        self.folded[partition] = self.folded.get(partition, 0) + 1

    def due(self, now: float) -> list[int]:
        return [
            partition
            for partition, count in self.folded.items()
            if count > 0
            and (
                (self.every_events and count >= self.every_events)
                or now - self.written_at.get(partition, now) >= self.every_seconds
            )
        ]

    def changed(self) -> list[int]:
        """Partitions with events folded since their last snapshot."""
        return [partition for partition, count in self.folded.items() if count > 0]

    def taken(self, partitions: list[int], now: float) -> dict[int, int]:
        """Snapshots of `partitions` are being written: their counts start again from zero.
        Returns the counts they had, for `failed`."""
        counts = {p: self.folded[p] for p in partitions if p in self.folded}
        for partition in counts:
            self.folded[partition] = 0
            self.written_at[partition] = now
        return counts

    def failed(self, counts: dict[int, int]) -> None:
        """The snapshots `taken` returned these counts for were not stored: still due."""
        for partition, count in counts.items():
            if partition in self.folded:
                self.folded[partition] += count
