"""Figure 2: the framework's overhead. One site's run through the pipeline, against the same stage
code called in a plain loop in this process, on the same database, for a fresh site with the
same sample keywords.

The direct loop imports the stage workers' own code and adds no logic of its own: for stage 1,
each batch of keywords (the run's stage-1 batch size) is clustered by the offline provider and
written by stages/clusters.py's `write_clusters` (clusters, keyword mapping, credits) in one
transaction; for stages 2-6 the items `items.pending_refs` picks go one at a time through the
stage's `Step`: `load` in one transaction, `produce` (the offline provider at zero latency),
then `write` and `ledger.charge` in a second transaction, as the worker does. Left out is what
the framework adds around that: no outbox rows (its event emitter is a no-op), no stop check, no
Kafka, no orchestrator (stage 1's write still records its item results and the batch as handled,
in the same transaction, as the worker does). The loop's time is also given per stage, which
says where the stage code itself spends it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from api_gateway.run_commands import new_run_id
from contracts import commands as cmd
from contracts.envelope import Envelope, Payload, utcnow
from contracts.topics import Topics
from contracts.values import RunConfig
from stage_workers.ai.offline import OfflineProvider
from stage_workers.ai.retry import RetryPolicy
from stage_workers.batch import BatchContext, Step
from stage_workers.deps import WorkerDeps
from stage_workers.items import pending_refs
from stage_workers.ledger import charge
from stage_workers.outcomes import Tally
from stage_workers.stages import ITEM_STEPS
from stage_workers.stages.clusters import write_clusters
from tests.bench.harness import CREDITS, Stack
from tests.bench.throughput import Throughput, sites_at_once
from tests.support.pipeline import Site, command, new_site


class WithoutOutbox(WorkerDeps):
    """The worker's dependencies with events dropped: the direct loop publishes nothing."""

    def emit(self, conn: Connection, command: Envelope, payload: Payload, message_id) -> bool:
        return False


@dataclass(frozen=True)
class Overhead:
    by_stage: dict[int, tuple[int, float]]  # stage -> (stage-steps, seconds) in the direct loop
    pipeline: Throughput

    @property
    def direct_seconds(self) -> float:
        return sum(seconds for _, seconds in self.by_stage.values())

    @property
    def direct_steps(self) -> int:
        return sum(steps for steps, _ in self.by_stage.values())

    @property
    def ratio(self) -> float:
        return self.pipeline.seconds / self.direct_seconds


async def direct_run(
    stack: Stack, site: Site, config: RunConfig, media_dir: Path
) -> dict[int, tuple[int, float]]:
    """Stages 1-6 for the site in a plain loop; per stage, the stage-steps done and the time."""
    ai = OfflineProvider(latency_ms=0)
    deps = WithoutOutbox(stack.engine, ai, RetryPolicy(), Topics(), media_dir)
    run_id = new_run_id()
    by_stage = {}
    began = time.perf_counter()
    steps = await _stage_1(deps, site, run_id, config.batch_size(1))
    by_stage[1] = (steps, time.perf_counter() - began)
    for step in ITEM_STEPS.values():
        began = time.perf_counter()
        steps = await _item_stage(deps, site, run_id, step)
        by_stage[step.stage] = (steps, time.perf_counter() - began)
    return by_stage


async def _stage_1(deps: WorkerDeps, site: Site, run_id: str, batch_size: int) -> int:
    with deps.engine.begin() as conn:
        refs = pending_refs(conn, 1, site.site_id)
    steps = 0
    for start in range(0, len(refs), batch_size):
        todo = refs[start : start + batch_size]
        batch = cmd.ProcessBatch(
            run_id=run_id,
            stage=1,
            batch_id=f"1-{start // batch_size + 1}",
            item_ids=tuple(ref.id for ref in todo),
            lease_until=utcnow(),
        )
        drafts = await deps.ai.cluster_keywords([ref.title for ref in todo])
        context = BatchContext(command(site, batch, run_id), batch, len(refs))
        written = Tally()
        with deps.engine.begin() as conn:
            write_clusters(conn, deps, context, todo, drafts, written)
        steps += written.processed
    return steps


async def _item_stage(deps: WorkerDeps, site: Site, run_id: str, step: Step) -> int:
    with deps.engine.begin() as conn:
        refs = pending_refs(conn, step.stage, site.site_id)
    for ref in refs:
        with deps.engine.begin() as conn:
            source = step.load(conn, ref.id)
        draft = await step.produce(deps.ai, source)
        with deps.engine.begin() as conn:
            step.write(conn, deps, run_id, source, draft)
            charge(
                conn,
                account_id=site.account_id,
                site_id=site.site_id,
                run_id=run_id,
                stage=step.stage,
                item_id=ref.id,
                amount=step.credits,
            )
    return len(refs)


async def overhead(stack: Stack, keywords: int) -> Overhead:
    site = new_site(stack.engine, keywords, CREDITS)
    by_stage = await direct_run(stack, site, RunConfig(), stack.workdir / "direct-media")
    pipeline = await sites_at_once(stack, "1 site, pipeline", 1, keywords, RunConfig())
    return Overhead(by_stage, pipeline)


def table(result: Overhead) -> list[str]:
    stages = ", ".join(
        f"{stage}: {seconds:.2f} s for {steps}"
        for stage, (steps, seconds) in result.by_stage.items()
    )
    return [
        "| stage-steps (direct / pipeline) | direct loop, s | pipeline, s | pipeline ÷ direct |",
        "|---|---|---|---|",
        f"| {result.direct_steps} / {result.pipeline.steps} | {result.direct_seconds:.2f} | "
        f"{result.pipeline.seconds:.1f} | {result.ratio:.1f}x |",
        "",
        f"The direct loop by stage (time for its stage-steps): {stages}.",
    ]
