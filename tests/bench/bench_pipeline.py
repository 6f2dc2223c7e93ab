"""End-to-end throughput of the pipeline on the real local stack: the services as processes,
runs started on the run-commands topic, figures read from the event stream.

    .tools/bin/uv run --frozen python -m tests.bench.bench_pipeline [--preset quick|full]

Figures (each a separate scenario, on fresh sites and a fresh topic namespace):
- stage-steps/s with 1 site and with N sites started together, zero AI latency; a stage-step is
  one item through one stage (processed or failed), summed over stages 1-6;
- the slowest run's time over the fastest's when N sites run at once (fairness);
- one site's run time with 200 ms per AI call at stage_concurrency 1, 4, 8, 16, and the speedup
  over concurrency 1.
The results are printed as a Markdown section and, with --write, added to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shlex
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from contracts.settings import repo_root
from contracts.state import RunState
from contracts.topics import Topics
from contracts.values import RunConfig
from tests.support.kafka import delete_topics
from tests.support.pipeline import Pipeline, new_site
from tests.support.services import Services

FAST_ORCHESTRATOR = {"TICK_SECONDS": "0.1", "SCHEDULER_ENABLED": "false"}
PRESETS = {
    "quick": {"keywords": 60, "sites": [1, 10], "latency_keywords": 10, "concurrency": [1, 8]},
    "full": {
        "keywords": 120,
        "sites": [1, 10, 50],
        "latency_keywords": 20,
        "concurrency": [1, 4, 8, 16],
    },
}


@dataclass
class Result:
    name: str
    runs: int
    steps: int
    seconds: float
    slowest: float
    fastest: float

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def steps_of(state: RunState) -> int:
    return sum(stage.processed_count + len(stage.failed) for stage in state.stages[:6])


class Bench:
    def __init__(self, bootstrap: str, database_url: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.workdir = workdir
        self.engine = sync_engine(database_url)

    async def scenario(
        self, name: str, sites: int, keywords: int, config: RunConfig, latency_ms: int = 0
    ) -> Result:
        from local_stack.topics import ensure_topics

        topics = Topics(f"b{uuid.uuid4().hex[:8]}.")
        await asyncio.to_thread(ensure_topics, self.bootstrap, topics)
        run_dir = self.workdir / topics.namespace.rstrip(".")
        services = Services(
            base_env={
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "DATABASE_URL": self.database_url,
                "TOPIC_NAMESPACE": topics.namespace,
                "KAFKA_GROUP_PREFIX": topics.namespace,
                "AI_PROVIDER": "offline",
                "OFFLINE_LATENCY_MS": str(latency_ms),
                "MEDIA_DIR": str(run_dir / "media"),
                "LOG_BASE_DIR": str(run_dir / "logs"),
            },
            log_dir=run_dir / "service-logs",
        )
        try:
            await asyncio.to_thread(
                services.start, "orchestrator", "orchestrator", env=FAST_ORCHESTRATOR
            )
            await asyncio.to_thread(services.start, "workers", "stage-worker")
            made = [new_site(self.engine, keywords, 10**7) for _ in range(sites)]
            pipeline = Pipeline(self.bootstrap, topics)
            began = time.monotonic()
            run_ids = [await pipeline.start(site, config=config) for site in made]
            states = await asyncio.gather(
                *(self.finished(pipeline, run_id, began) for run_id in run_ids)
            )
            seconds = max(elapsed for _, elapsed in states)
            durations = [elapsed for _, elapsed in states]
            return Result(
                name=name,
                runs=sites,
                steps=sum(steps_of(state) for state, _ in states),
                seconds=seconds,
                slowest=max(durations),
                fastest=min(durations),
            )
        finally:
            services.stop_all()
            names = [spec.name for spec in topics.specs()]
            await asyncio.to_thread(delete_topics, self.bootstrap, names)

    @staticmethod
    async def finished(pipeline: Pipeline, run_id: str, began: float) -> tuple[RunState, float]:
        state = await pipeline.wait_for(
            run_id, lambda s: s.status in ("completed", "failed", "cancelled"), timeout=3600
        )
        if state.status != "completed":
            raise RuntimeError(f"run {run_id} ended {state.status}: {state.error}")
        return state, time.monotonic() - began


async def run(preset: str, bootstrap: str, database_url: str) -> list[Result]:
    figures = PRESETS[preset]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        bench = Bench(bootstrap, database_url, Path(workdir))
        for sites in figures["sites"]:
            result = await bench.scenario(
                f"{sites} site(s), zero latency", sites, figures["keywords"], RunConfig()
            )
            print(report_line(result), flush=True)
            results.append(result)
        for concurrency in figures["concurrency"]:
            config = RunConfig(stage_concurrency=concurrency)
            result = await bench.scenario(
                f"1 site, 200 ms AI latency, stage_concurrency {concurrency}",
                1,
                figures["latency_keywords"],
                config,
                latency_ms=200,
            )
            print(report_line(result), flush=True)
            results.append(result)
    return results


def report_line(result: Result) -> str:
    return (
        f"| {result.name} | {result.runs} | {result.steps} | {result.seconds:.1f} | "
        f"{result.steps_per_second:.1f} | {result.slowest / result.fastest:.2f} |"
    )


def report(preset: str, results: list[Result], command: str) -> str:
    latency = [r for r in results if "200 ms" in r.name]
    base = latency[0].seconds if latency else None
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, preset `{preset}`",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}. Command: `{command}`.",
        "",
        "| scenario | runs | stage-steps | seconds | stage-steps/s | slowest ÷ fastest run |",
        "|---|---|---|---|---|---|",
        *(report_line(r) for r in results),
    ]
    if base:
        lines += ["", "Speedup over stage_concurrency 1 (200 ms AI latency):"]
        lines += [
            f"- stage_concurrency {r.name.rsplit(' ', 1)[-1]}: {base / r.seconds:.2f}x"
            for r in latency
        ]
    return "\n".join(lines) + "\n"


def main(
    preset: Annotated[str, typer.Option(help="quick (a few minutes) or full")] = "quick",
    write: Annotated[bool, typer.Option(help="Append the result to docs/BENCHMARKS.md.")] = False,
) -> None:
    """Run the pipeline benchmark on the local stack and print the figures."""
    if preset not in PRESETS:
        raise typer.BadParameter(f"preset must be one of {sorted(PRESETS)}")
    from local_stack import stack as local_stack

    up = local_stack.ensure_up()
    upgrade(up.database_url)
    try:
        results = asyncio.run(run(preset, up.kafka_bootstrap, up.database_url))
    finally:
        if up.started:
            local_stack.down()
    command = shlex.join(["python", "-m", "tests.bench.bench_pipeline", *sys.argv[1:]])
    section = report(preset, results, command)
    print(section)
    if write:
        path = repo_root() / "docs" / "BENCHMARKS.md"
        existing = path.read_text() if path.exists() else "# Benchmarks\n\n"
        path.write_text(existing.rstrip("\n") + "\n\n" + section)


if __name__ == "__main__":
    typer.run(main)
