"""Figure 2: the framework's overhead. One site's run through the pipeline, against the same stage
code called in a plain loop in this process, on the same database, for a fresh site with the
same sample keywords.

The direct loop imports the stage workers' own code and adds no logic of its own: the items
`items.pending_refs` picks go through each stage's `Step` a unit at a time (stage 1's unit is a
batch of the run's stage-1 batch size, the other stages' one item): `load` in one transaction,
`produce` (the offline provider at zero latency), then `write` and `unit_of_work.charge` (the step's
price, by the item's place in the stage) in a second transaction, as the worker does. Left out is
what the framework adds around that: no outbox rows, no bookkeeping, no stop check, no Kafka, no
orchestrator. The loop's time is also given per stage, which says where the stage code itself
spends it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from api_gateway.run_commands import new_run_id
from contracts.stages import PRICES
from contracts.topics import Topics
from contracts.values import RunConfig
from stage_workers.ai.factory import offline_ai
from stage_workers.batch import Step
from stage_workers.deps import WorkerDeps
from stage_workers.items import pending_refs
from stage_workers.stages import ITEM_STEPS
from stage_workers.unit_of_work import charge
from tests.bench.harness import CREDITS, Stack
from tests.bench.throughput import Throughput, sites_at_once
from tests.support.pipeline import Site, new_site


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
    deps = WorkerDeps(stack.engine, offline_ai(), Topics(), media_dir)
    run_id = new_run_id()
    by_stage = {}
    for step in ITEM_STEPS.values():
        began = time.perf_counter()
        unit_size = config.batch_size(step.stage) if step.unit == "batch" else 1
        steps = await _stage(deps, site, run_id, step, unit_size)
        by_stage[step.stage] = (steps, time.perf_counter() - began)
    return by_stage


async def _stage(deps: WorkerDeps, site: Site, run_id: str, step: Step, unit_size: int) -> int:
    with deps.engine.begin() as conn:
        refs = pending_refs(conn, step.stage, site.site_id)
    places = {ref.id: n for n, ref in enumerate(refs)}
    for start in range(0, len(refs), unit_size):
        unit = tuple(refs[start : start + unit_size])
        with deps.engine.begin() as conn:
            source = step.load(conn, unit)
        draft = await step.produce(deps.ai, source)
        with deps.engine.begin() as conn:
            outputs = step.write(conn, deps, run_id, source, draft, {ref.id for ref in unit})
            for item_id in outputs:
                charge(
                    conn,
                    account_id=site.account_id,
                    site_id=site.site_id,
                    run_id=run_id,
                    stage=step.stage,
                    item_id=item_id,
                    amount=PRICES[step.stage].due(places[item_id]),
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
