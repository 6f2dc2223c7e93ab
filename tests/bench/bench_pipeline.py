"""The throughput issue's figures on the real local stack, with the services as processes:

    .tools/bin/uv run --frozen python -m tests.bench.bench_pipeline [--preset quick|full]
        [--only throughput,overhead,concurrency,read-model,replay,gateway,provider,soak,
                 economy]
        [--write]

1. throughput   stage-steps/s for 1 site and for N sites at once at zero AI latency, and the
                slowest run's time over the fastest's (throughput.py);
2. overhead     one site's run through the pipeline ÷ the same stage code in a direct loop in
                one process on the same database (direct.py);
3. concurrency  one site's run with 200 ms per AI call at stage_concurrency 1, 4, 8, 16, and
                the speedup over 1 (throughput.py);
4. read-model   stage command sent → its item visible in the run read model, p50/p99
                (read_model.py);
5. replay       decode + fold rate, and the orchestrator's time to ready after a restart, with
                10^5 (full: also 10^6) events on the run-events topic (replay.py);
6. gateway      p50/p99 of GET current_processing and current_run at 200 requests/s during a
                10-site run, with errors (gateway_load.py);
7. provider     10 sites against a test provider that limits requests per minute: the pace
                achieved over the limit, the share of 429s, fairness between the sites and the
                wait at the gate (provider.py);
8. soak         200 runs, 10 at a time, each followed by a live stream and read every second:
                every service's resident memory after each round, and its growth per run after
                the warm-up (soak.py);
9. economy      the same keywords through a standard run and an economy run (the AI stages
                through the provider's Batch API): calls and their route, tokens, images,
                money, credits and outputs of each, and the money's ratio (economy.py).

Each figure runs on fresh sites and a fresh topic namespace; each prints its table as soon as it
is done, and the whole is printed at the end as a Markdown section that --write appends to
docs/BENCHMARKS.md. The section gives the load average before and after and how many cores other
work kept busy meanwhile (machine.py), and says when the figures were taken under load.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from contracts.settings import repo_root
from tests.bench import (
    direct,
    economy,
    gateway_load,
    machine,
    provider,
    read_model,
    replay,
    soak,
    throughput,
)
from tests.bench.harness import Stack


@dataclass(frozen=True)
class Preset:
    keywords: int  # per site, for the zero-latency, overhead and read-model runs
    sites: tuple[int, ...]
    latency_keywords: int
    concurrency: tuple[int, ...]
    replay_events: tuple[int, ...]
    gateway_sites: int
    gateway_keywords: int
    gateway_rate: float = 200.0
    provider_sites: int = 10
    provider_keywords: int = 12
    provider_limit: int = 600  # requests per minute per model
    soak_runs: int = 200
    soak_sites: int = 10
    soak_keywords: int = 20
    economy_keywords: int = 120  # all the sample keywords, in both presets


PRESETS = {
    "quick": Preset(60, (1, 10), 10, (1, 4, 8, 16), (10**5,), 10, 20),
    "full": Preset(
        120, (1, 10, 50), 20, (1, 4, 8, 16), (10**5, 10**6), 10, 60, provider_keywords=30
    ),
}


async def throughput_figure(stack: Stack, preset: Preset) -> list[str]:
    results = [await throughput.zero_latency(stack, n, preset.keywords) for n in preset.sites]
    return throughput.table(results)


async def overhead_figure(stack: Stack, preset: Preset) -> list[str]:
    return direct.table(await direct.overhead(stack, preset.keywords))


async def concurrency_figure(stack: Stack, preset: Preset) -> list[str]:
    results = [
        await throughput.with_latency(stack, n, preset.latency_keywords) for n in preset.concurrency
    ]
    return throughput.table(results) + throughput.speedups(results)


async def read_model_figure(stack: Stack, preset: Preset) -> list[str]:
    return read_model.table(await read_model.command_to_read_model(stack, preset.keywords))


async def replay_figure(stack: Stack, preset: Preset) -> list[str]:
    return replay.table([await replay.replay(stack, n) for n in preset.replay_events])


async def gateway_figure(stack: Stack, preset: Preset) -> list[str]:
    load = await gateway_load.under_load(
        stack, preset.gateway_sites, preset.gateway_keywords, preset.gateway_rate
    )
    return gateway_load.table(load)


async def provider_figure(stack: Stack, preset: Preset) -> list[str]:
    figures = await provider.under_limit(
        stack, preset.provider_sites, preset.provider_keywords, preset.provider_limit
    )
    return provider.table(figures)


async def soak_figure(stack: Stack, preset: Preset) -> list[str]:
    result = await soak.soak(stack, preset.soak_runs, preset.soak_sites, preset.soak_keywords)
    return soak.table(result, preset.soak_sites)


async def economy_figure(stack: Stack, preset: Preset) -> list[str]:
    figures = await economy.standard_and_economy(stack, preset.economy_keywords)
    return economy.table(figures, preset.economy_keywords)


Figure = Callable[[Stack, Preset], Awaitable[list[str]]]
FIGURES: dict[str, tuple[str, Figure]] = {
    "throughput": ("1. Stage-steps/s at zero AI latency", throughput_figure),
    "overhead": ("2. Framework overhead: pipeline ÷ direct loop, one site", overhead_figure),
    "concurrency": ("3. 200 ms AI latency: stage_concurrency and speedup", concurrency_figure),
    "read-model": ("4. Stage command sent → item visible in the read model", read_model_figure),
    "replay": ("5. Replay: fold rate and orchestrator ready after restart", replay_figure),
    "gateway": ("6. Gateway reads at a fixed rate during a 10-site run", gateway_figure),
    "provider": ("7. A rate-limited AI provider shared by 10 sites", provider_figure),
    "soak": ("8. Memory over 200 runs: every service's RSS", soak_figure),
    "economy": ("9. Economy runs: the same keywords through the Batch API", economy_figure),
}


async def run(preset: Preset, names: list[str], stack: Stack) -> tuple[list[str], bool]:
    lines: list[str] = []
    ok = True
    for name in names:
        title, figure = FIGURES[name]
        began = time.monotonic()
        try:
            body = await figure(stack, preset)
        except Exception:
            ok = False
            body = ["FAILED:", "", "```", traceback.format_exc().rstrip(), "```"]
        part = [f"### {title}", "", *body, "", f"({time.monotonic() - began:.0f} s)", ""]
        print("\n".join(part), flush=True)
        lines += part
    return lines, ok


def header(
    preset: str, command: str, loads: tuple[float, float], others: float | None
) -> list[str]:
    cores = os.cpu_count() or 1
    load = f"Load average (1 min) {loads[0]:.1f} before, {loads[1]:.1f} after, on {cores} cores"
    if others is None:
        busy = loads[0] > cores
        load += "."
    else:
        busy = others > machine.BUSY_CORES
        load += f"; other work kept {others:.2f} cores busy on average while the bench ran."
    if busy:
        load += " **Taken under load**: noisy lower bounds."
    return [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, preset `{preset}`",
        "",
        f"Machine: {platform.node()}, {cores} cores, Python {platform.python_version()}, "
        f"{platform.platform()}. Command: `{command}`. {load}",
        "",
    ]


def main(
    preset: Annotated[str, typer.Option(help="quick (≤ ~10 min) or full (≤ ~1 h)")] = "quick",
    only: Annotated[
        str, typer.Option(help=f"Comma-separated figures, of: {', '.join(FIGURES)}.")
    ] = ",".join(FIGURES),
    write: Annotated[bool, typer.Option(help="Append the result to docs/BENCHMARKS.md.")] = False,
) -> None:
    """Run the benchmark figures on the local stack and print them."""
    if preset not in PRESETS:
        raise typer.BadParameter(f"preset must be one of {sorted(PRESETS)}")
    names = [name.strip() for name in only.split(",") if name.strip()]
    if unknown := [name for name in names if name not in FIGURES]:
        raise typer.BadParameter(f"unknown figures {unknown}; known: {list(FIGURES)}")
    from local_stack import stack as local_stack

    up = local_stack.ensure_up()
    upgrade(up.database_url)
    load_before, before = os.getloadavg()[0], machine.sample()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            engine = sync_engine(up.database_url)
            stack = Stack(up.kafka_bootstrap, up.database_url, Path(workdir), engine)
            lines, ok = asyncio.run(run(PRESETS[preset], names, stack))
            engine.dispose()  # its server backends end, and count as the bench's own work
        after = machine.sample()  # while the stack it started still runs
    finally:
        if up.started:
            local_stack.down()
    command = shlex.join(["python", "-m", "tests.bench.bench_pipeline", *sys.argv[1:]])
    others = machine.other_work(before, after)
    loads = (load_before, os.getloadavg()[0])
    section = "\n".join(header(preset, command, loads, others) + lines)
    print(section)
    if not ok:
        raise typer.Exit(1)
    if write:
        path = repo_root() / "docs" / "BENCHMARKS.md"
        existing = path.read_text() if path.exists() else "# Benchmarks\n\n"
        path.write_text(existing.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n")


if __name__ == "__main__":
    typer.run(main)
