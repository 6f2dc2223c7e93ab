"""Figures 1 and 3: runs through the whole pipeline (orchestrator and one stage-worker process).

- Stage-steps/s with 1 site and with N sites started together, zero AI latency, and the slowest
  run's time over the fastest's (fairness). A stage-step is one item through one stage, processed
  or failed, summed over stages 1-6 of every run.
- One site's run time with 200 ms per offline AI call at several stage_concurrency values, and
  the speedup over stage_concurrency 1.

A run's time is from just before its StartRun was sent to the Kafka timestamp of the event that
ended it; a scenario's time is that of its slowest run.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.values import RunConfig
from tests.bench.harness import Stack, deployment, steps_of


@dataclass(frozen=True)
class Throughput:
    name: str
    runs: int
    steps: int
    seconds: float
    slowest: float
    fastest: float

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    @property
    def spread(self) -> float:
        return self.slowest / self.fastest if self.fastest else 0.0


async def sites_at_once(
    stack: Stack, name: str, sites: int, keywords: int, config: RunConfig, latency_ms: int = 0
) -> Throughput:
    async with deployment(stack, "orchestrator", "workers", latency_ms=latency_ms) as deployed:
        runs = await deployed.run_new_sites(sites, keywords, config)
    return Throughput(
        name=name,
        runs=sites,
        steps=sum(steps_of(state) for state in runs.states),
        seconds=max(runs.seconds),
        slowest=max(runs.seconds),
        fastest=min(runs.seconds),
    )


async def zero_latency(stack: Stack, sites: int, keywords: int) -> Throughput:
    name = f"{sites} sites at once, zero AI latency" if sites > 1 else "1 site, zero AI latency"
    return await sites_at_once(stack, name, sites, keywords, RunConfig())


async def with_latency(stack: Stack, concurrency: int, keywords: int) -> Throughput:
    name = f"1 site, 200 ms AI latency, stage_concurrency {concurrency}"
    config = RunConfig(stage_concurrency=concurrency)
    return await sites_at_once(stack, name, 1, keywords, config, latency_ms=200)


def table(results: list[Throughput]) -> list[str]:
    lines = [
        "| scenario | runs | stage-steps | seconds | stage-steps/s | slowest ÷ fastest run |",
        "|---|---|---|---|---|---|",
    ]
    return lines + [row(r) for r in results]


def row(r: Throughput) -> str:
    return (
        f"| {r.name} | {r.runs} | {r.steps} | {r.seconds:.1f} | {r.steps_per_second:.1f} | "
        f"{r.spread:.2f} |"
    )


def speedups(latency: list[Throughput]) -> list[str]:
    if not latency:
        return []
    base = latency[0].seconds
    lines = ["", "Speedup over stage_concurrency 1 (200 ms AI latency, same keywords):", ""]
    return lines + [
        f"- stage_concurrency {r.name.rsplit(' ', 1)[-1]}: {r.seconds:.1f} s, "
        f"{base / r.seconds:.2f}x"
        for r in latency
    ]
