"""Figure 7: runs against a provider that limits requests per minute the way OpenAI does (the
test provider of tests/support/fake_openai.py), with the stage workers in two processes sharing
the limit through the gate.

- achieved ÷ limit: per model, the calls the provider let through over the time from its first
  to its last, over the limit. The text model's span includes the moments when every run is in a
  stage without AI calls, so it is a lower bound of the pace while calls wait;
- the share of calls answered 429;
- the slowest run's time over the fastest's (fairness between sites);
- the admission wait at the gate (p50, p99, max), from the AI-call records;
- failed items, and the money the records say the calls cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.db import tables as t
from contracts.values import RunConfig
from tests.bench.harness import Stack, deployment, percentile
from tests.support.fake_openai import FakeOpenAI

LATENCY_SECONDS = 0.1


@dataclass(frozen=True)
class ModelPace:
    model: str
    calls: int
    seconds: float
    limit_per_minute: int

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def of_limit(self) -> float:
        return self.per_second / (self.limit_per_minute / 60)


@dataclass(frozen=True)
class ProviderFigures:
    sites: int
    keywords: int
    limit_per_minute: int
    paces: list[ModelPace]
    calls: int
    rate_limited: int
    slowest: float
    fastest: float
    waits_ms: list[int]
    failed_items: int
    cost_usd: float
    unfinished: int

    @property
    def rate_limited_share(self) -> float:
        return self.rate_limited / self.calls if self.calls else 0.0


def paces(times: list[tuple[float, str]], limit: int) -> list[ModelPace]:
    by_model: dict[str, list[float]] = defaultdict(list)
    for at, model in times:
        by_model[model].append(at)
    # Calls let through in the same second as the first are within its budget too: the span
    # runs from the first call to the last plus the one second the burst allows.
    return [
        ModelPace(model, len(ats), max(ats) - min(ats) + 1.0, limit)
        for model, ats in sorted(by_model.items())
    ]


def recorded(engine: sa.Engine, run_ids: list[str]) -> tuple[list[int], float, int]:
    c = t.ai_calls.c
    r = t.stage_item_results.c
    with engine.connect() as conn:
        waits = conn.execute(sa.select(c.waited_ms).where(c.run_id.in_(run_ids))).scalars().all()
        cost = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(c.cost_usd), 0)).where(c.run_id.in_(run_ids))
        ).scalar_one()
        failed = conn.execute(
            sa.select(sa.func.count()).where(r.run_id.in_(run_ids), r.outcome == "failed")
        ).scalar_one()
    return list(waits), float(cost), failed


async def under_limit(
    stack: Stack, sites: int, keywords: int, limit_per_minute: int
) -> ProviderFigures:
    fake = FakeOpenAI().start()
    try:
        fake.set_limits(rpm=limit_per_minute)
        fake.latency_seconds = LATENCY_SECONDS
        env = fake.worker_env(
            AI_REQUESTS_PER_MINUTE=str(limit_per_minute),
            # The test provider counts requests only; a token budget would bind first.
            AI_TOKENS_PER_MINUTE=str(10**9),
        )
        async with deployment(stack, "orchestrator", "workers", "workers-2", env=env) as deployed:
            runs = await deployed.run_new_sites(sites, keywords, RunConfig(stage_concurrency=8))
        stats = fake.stats()
        times = fake.answer_times()
    finally:
        fake.stop()
    waits, cost, failed = recorded(stack.engine, runs.run_ids)
    return ProviderFigures(
        sites=sites,
        keywords=keywords,
        limit_per_minute=limit_per_minute,
        paces=paces(times, limit_per_minute),
        calls=stats["calls"],
        rate_limited=stats["rate_limited"],
        slowest=max(runs.seconds),
        fastest=min(runs.seconds),
        waits_ms=waits,
        failed_items=failed,
        cost_usd=cost,
        unfinished=sum(state.status != "completed" for state in runs.states),
    )


def table(f: ProviderFigures) -> list[str]:
    waits = f.waits_ms or [0]
    lines = [
        f"{f.sites} sites × {f.keywords} keywords at once, stage_concurrency 8, two worker "
        f"processes; the provider allows {f.limit_per_minute} requests/min per model and answers "
        f"in {LATENCY_SECONDS * 1000:.0f} ms; the gate's request budget is the same limit, its "
        "token budget unbounded.",
        "",
        "| model | calls let through | seconds (first → last) | calls/s | ÷ limit (≥ 0.95) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {p.model} | {p.calls} | {p.seconds:.1f} | {p.per_second:.2f} | {p.of_limit:.3f} |"
        for p in f.paces
    ]
    return [
        *lines,
        "",
        f"- calls sent {f.calls}, answered 429: {f.rate_limited} "
        f"({100 * f.rate_limited_share:.2f} %, target ≤ 2 %)",
        f"- slowest ÷ fastest run: {f.slowest:.1f} s ÷ {f.fastest:.1f} s = "
        f"{f.slowest / f.fastest:.2f} (target ≤ 1.3)",
        f"- admission wait at the gate: p50 {percentile(waits, 50):.0f} ms, "
        f"p99 {percentile(waits, 99):.0f} ms, max {max(waits)} ms over {len(f.waits_ms)} calls",
        f"- failed items {f.failed_items}; runs not completed {f.unfinished}; "
        f"recorded cost ${f.cost_usd:.2f} at the price table's prices",
    ]
