"""One site's state driven through the orchestrator's pure decisions the way the app drives
it (its own events applied at once), on a clock the test moves, and readers of what was decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts import commands as cmd
from contracts import events as ev
from contracts.envelope import Envelope, Payload
from contracts.values import ItemRef, RunConfig
from orchestrator.decide import Limits, Outgoing, on_command, tick
from orchestrator.sites import SiteState
from orchestrator.transitions import remember
from tests.support import runs

ACCOUNT, SITE = 5, 501
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LIMITS = Limits(lease_seconds=120, start_stage_retry_seconds=30)


def items(stage: int, count: int) -> tuple[ItemRef, ...]:
    return tuple(ItemRef(id=stage * 1000 + i, title=f"s{stage}-{i}") for i in range(1, count + 1))


class Harness:
    """One site's state driven like the app drives it: own events applied at once."""

    def __init__(self) -> None:
        self.site = SiteState(SITE)
        self.now = T0
        self.stream: list[Envelope] = []

    def apply(self, message: Envelope) -> None:
        self.stream.append(message)
        self.site = self.site.apply(message)

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def envelope(self, payload: Payload, run_id: str | None = None) -> Envelope:
        return runs.envelope(payload, run_id, self.now, account_id=ACCOUNT, site_id=SITE)

    def emit(self, decided: list[Outgoing]) -> list[Outgoing]:
        self.stream += [out.message for out in decided if out.is_event]
        self.site = remember(self.site, decided, self.now)
        return decided

    def command(self, payload: Payload) -> list[Outgoing]:
        return self.send_command(self.envelope(payload, payload.run_id))

    def send_command(self, message: Envelope) -> list[Outgoing]:
        return self.emit(on_command(self.site, message, self.now))

    def worker(self, run_id: str, payload: Payload) -> None:
        self.apply(self.envelope(payload, run_id))

    def tick(self, run_id: str) -> list[Outgoing]:
        run = self.site.run(run_id)
        return self.emit(tick(run, self.site.notes_of(run_id), self.now, LIMITS))

    def start(self, run_id: str = "run_a", config: RunConfig | None = None, **fields) -> str:
        fields = {"estimate": 10, "balance": 100, **fields}
        start = cmd.StartRun(
            run_id=run_id, trigger="manual", config=config or RunConfig(), **fields
        )
        self.command(start)
        return run_id

    def begin_stage(self, run_id: str, stage: int, picked: tuple[ItemRef, ...]) -> None:
        self.worker(run_id, ev.StageStarted(stage=stage, items=picked))

    def process(self, run_id: str, stage: int, batch_id: str, *item_ids: int, total: int = 0):
        for item_id in item_ids:
            item = ItemRef(id=item_id, title=str(item_id))
            processed = ev.StageItemProcessed(
                stage=stage, batch_id=batch_id, item=item, total=total, credits=2, outputs=1
            )
            self.worker(run_id, processed)

    def complete_batch(self, run_id: str, stage: int, batch_id: str, **fields) -> None:
        fields = {"processed": 1, "failed": 0, **fields}
        self.worker(run_id, ev.StageBatchCompleted(stage=stage, batch_id=batch_id, **fields))

    def run(self, run_id: str = "run_a"):
        return self.site.run(run_id)


def payloads(decided: list[Outgoing]) -> list[Payload]:
    return [out.message.data for out in decided]


def kinds(decided: list[Outgoing]) -> list[str]:
    return [type(out.message.data).__name__ for out in decided]


def dispatched(decided: list[Outgoing]) -> list[ev.StageBatchDispatched]:
    return [p for p in payloads(decided) if isinstance(p, ev.StageBatchDispatched)]
