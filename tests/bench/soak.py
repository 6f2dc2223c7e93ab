"""Figure 8: memory over many runs. Rounds of runs (10 sites at once, fresh sites each round)
go through the services as processes while a client does what the console does for each run:
follows its live stream to the end and reads current_processing every second. After each round
the resident memory (RSS) of every service process is sampled; what grows per run after the
first rounds (the warm-up: imports, pools, caches filling) is what a long-lived deployment
would keep growing by.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from contracts.values import RunConfig
from tests.bench.harness import Stack, deployment, issue_token, steps_of, watch
from tests.support.services import ServiceProcess

API = "/api/v1/automation"
SERVICES = ("log-sink", "orchestrator", "workers", "gateway")
WARM_UP_ROUNDS = 3
BUFFERED = re.compile(r"^automation_gateway_live_buffered_bytes\s+(\S+)$", re.M)


@dataclass
class Soak:
    runs: int = 0
    steps: int = 0
    streamed: int = 0  # live events delivered to the streams
    stream_errors: int = 0
    seconds: float = 0.0
    # Per service: RSS in bytes after each round.
    rss: dict[str, list[int]] = field(default_factory=lambda: {name: [] for name in SERVICES})
    buffered_max: float = 0.0


def rss_of(service: ServiceProcess) -> int:
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) * 1024


async def follow(client: httpx.AsyncClient, run_id: str, token: str, soak: Soak) -> None:
    """Read the run's live stream to its end, as the console's EventSource does."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with client.stream("GET", f"{API}/runs/{run_id}/events", headers=headers) as answer:
            async for line in answer.aiter_lines():
                if line.startswith("event: "):
                    soak.streamed += 1
    except httpx.HTTPError:
        soak.stream_errors += 1


async def poll(client: httpx.AsyncClient, site_id: int, run_id: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    params = {"site_id": site_id, "run_id": run_id}
    while True:
        with contextlib.suppress(httpx.HTTPError):
            await client.get(f"{API}/current_processing", params=params, headers=headers)
        await asyncio.sleep(1.0)


async def soak(stack: Stack, runs: int, sites: int, keywords: int) -> Soak:
    result = Soak()
    loop = asyncio.get_running_loop()
    async with deployment(stack, *SERVICES) as deployed:
        processes = {s.name: s for s in deployed.services.started}
        gateway = processes["gateway"]
        timeout = httpx.Timeout(30.0, read=None)
        async with (
            watch(deployed) as watcher,
            httpx.AsyncClient(base_url=deployed.gateway_url, timeout=timeout) as client,
        ):
            began = loop.time()
            while result.runs < runs:
                made = deployed.new_sites(sites, keywords)
                tokens = [issue_token(stack.engine, site.account_id) for site in made]
                run_ids, _ = await deployed.start_runs(made, RunConfig())
                streams = [
                    asyncio.create_task(follow(client, run_id, token, result))
                    for run_id, token in zip(run_ids, tokens, strict=True)
                ]
                polls = [
                    asyncio.create_task(poll(client, site.site_id, run_id, token))
                    for site, run_id, token in zip(made, run_ids, tokens, strict=True)
                ]
                sampler = asyncio.create_task(_sample_buffer(gateway, result))
                states = await watcher.finished(run_ids)
                await asyncio.wait_for(asyncio.gather(*streams), 60)
                for task in (*polls, sampler):
                    task.cancel()
                await asyncio.gather(*polls, sampler, return_exceptions=True)
                result.runs += len(run_ids)
                result.steps += sum(steps_of(state) for state in states)
                for name, service in processes.items():
                    result.rss[name].append(rss_of(service))
            result.seconds = loop.time() - began
    return result


async def _sample_buffer(gateway: ServiceProcess, result: Soak) -> None:
    while True:
        found = BUFFERED.search(await asyncio.to_thread(gateway.metrics))
        if found:
            result.buffered_max = max(result.buffered_max, float(found.group(1)))
        await asyncio.sleep(0.5)


def table(result: Soak, sites: int) -> list[str]:
    rounds = len(result.rss[SERVICES[0]])
    warm = min(WARM_UP_ROUNDS, rounds) - 1
    runs_after = (rounds - 1 - warm) * sites
    lines = [
        f"{result.runs} runs ({sites} at a time, {rounds} rounds), {result.steps:,} stage-steps "
        f"in {result.seconds:.0f} s; {result.streamed:,} live events delivered to "
        f"{result.runs} streams ({result.stream_errors} stream errors); the gateway held at "
        f"most {result.buffered_max / 1024:.0f} KiB of events for streams (sampled every 0.5 s).",
        "",
        f"| service | RSS after round 1 MB | after round {warm + 1} (warm) MB | at the end MB | "
        f"growth after warm-up, KB per run |",
        "|---|---|---|---|---|",
    ]
    for name in SERVICES:
        values = result.rss[name]
        growth = (values[-1] - values[warm]) / 1024 / max(runs_after, 1)
        lines.append(
            f"| {name} | {values[0] / 2**20:.0f} | {values[warm] / 2**20:.0f} | "
            f"{values[-1] / 2**20:.0f} | {growth:+.0f} |"
        )
    lines += ["", "RSS after each round, MB:", ""]
    for name in SERVICES:
        lines.append(f"- {name}: " + ", ".join(f"{v / 2**20:.0f}" for v in result.rss[name]))
    return lines
