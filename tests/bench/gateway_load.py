"""Figure 6: the gateway's GET current_processing and GET current_run at a fixed 200 requests/s
while 10 sites run at once (log-sink, orchestrator, one stage-worker process and the gateway as
processes; zero AI latency).

The load is open-loop: request k is due at start + k / rate, whatever became of the earlier
ones, and its latency is counted from when it was due, not from when it left (a slow answer
cannot hide the requests queued behind it). Requests go round the sites, alternating the two
calls, each with its site's own API token; current_processing names the run, so a site whose run
has ended still answers 200. At most 100 requests are in flight (the client's connections); one
due while all are busy waits for a free one, and that wait is part of its latency. Anything but
200, and any transport error or timeout (10 s from leaving), counts as an error. The load starts
with the runs and stops when the last run ends; requests still waiting or in flight then are
abandoned and counted as unanswered, with the time they had waited as their latency (so when
more than 1 % are unanswered, p99 is a lower bound). "Answered per second" is the gateway's
real rate when it cannot keep up with the one asked; the gateway's own CPU time over the load
(its process_cpu_seconds_total), divided by the requests it answered, says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

import httpx

from contracts.values import RunConfig
from tests.bench.harness import Stack, deployment, issue_token, percentile, steps_of, watch
from tests.support.services import ServiceProcess

API = "/api/v1/automation"
CALLS = ("current_processing", "current_run")
# Requests in flight at most (the client's connections); a request due while all are busy waits
# here, not in httpx's pool, whose queue costs grow with its length.
CONNECTIONS = 100
TIMEOUT = 10.0
CPU_SECONDS = re.compile(r"^process_cpu_seconds_total\s+(\S+)$", re.M)


@dataclass(frozen=True)
class Target:
    call: str
    params: dict[str, int | str]
    token: str


@dataclass
class Load:
    rate: float
    seconds: float = 0.0
    # Per call: latency of every request sent, from when it was due.
    latencies: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CALLS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALLS, 0))
    unanswered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALLS, 0))
    steps: int = 0
    run_seconds: float = 0.0
    gateway_cpu: float = 0.0  # seconds, from the gateway's process_cpu_seconds_total

    @property
    def sent(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def answered(self) -> int:
        return self.sent - sum(self.unanswered.values())


async def fixed_rate(url: str, targets: list[Target], load: Load, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    connections = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
        pending: set[asyncio.Task] = set()
        began, n = loop.time(), 0
        while not stop.is_set():
            due = began + n / load.rate
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
                break
            target = targets[n % len(targets)]
            task = asyncio.create_task(call(client, connections, target, due, load))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        load.seconds = loop.time() - began
        await asyncio.sleep(0)  # every request made has started (and can count itself)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def call(
    client: httpx.AsyncClient,
    connections: asyncio.Semaphore,
    target: Target,
    due: float,
    load: Load,
) -> None:
    headers = {"Authorization": f"Bearer {target.token}"}
    outcome = "error"
    try:
        async with connections:
            response = await client.get(
                f"{API}/{target.call}", params=target.params, headers=headers
            )
        outcome = "ok" if response.status_code == 200 else "error"
    except httpx.HTTPError:
        pass
    except asyncio.CancelledError:  # the load ended before it was answered
        outcome = "unanswered"
    load.latencies[target.call].append(asyncio.get_running_loop().time() - due)
    if outcome == "error":
        load.errors[target.call] += 1
    elif outcome == "unanswered":
        load.unanswered[target.call] += 1


async def under_load(stack: Stack, sites: int, keywords: int, rate: float) -> Load:
    names = ("log-sink", "orchestrator", "workers", "gateway")
    async with deployment(stack, *names) as deployed:
        made = deployed.new_sites(sites, keywords)
        tokens = [issue_token(stack.engine, site.account_id) for site in made]
        load = Load(rate)
        async with watch(deployed) as watcher:
            run_ids, began = await deployed.start_runs(made, RunConfig())
            targets = [
                target
                for site, token, run_id in zip(made, tokens, run_ids, strict=True)
                for target in (
                    Target(
                        "current_processing", {"site_id": site.site_id, "run_id": run_id}, token
                    ),
                    Target("current_run", {"site_id": site.site_id}, token),
                )
            ]
            gateway = next(s for s in deployed.services.started if s.name == "gateway")
            cpu_before = await asyncio.to_thread(cpu_seconds, gateway)
            stop = asyncio.Event()
            traffic = asyncio.create_task(fixed_rate(deployed.gateway_url, targets, load, stop))
            try:
                states = await watcher.finished(run_ids)
            finally:
                stop.set()
                await traffic
            load.gateway_cpu = await asyncio.to_thread(cpu_seconds, gateway) - cpu_before
        load.steps = sum(steps_of(state) for state in states)
        load.run_seconds = max(watcher.ended[run_id] for run_id in run_ids) - began
        return load


def cpu_seconds(service: ServiceProcess) -> float:
    found = CPU_SECONDS.search(service.metrics())
    return float(found.group(1)) if found else float("nan")


def table(load: Load) -> list[str]:
    lines = [
        f"{load.sent:,} requests sent in {load.seconds:.1f} s ({load.sent / load.seconds:.0f}/s, "
        f"{load.rate:.0f}/s asked), {load.answered:,} answered "
        f"({load.answered / load.seconds:.0f}/s), while the runs did {load.steps:,} stage-steps "
        f"in {load.run_seconds:.1f} s ({load.steps / load.run_seconds:.1f} stage-steps/s). "
        f"The gateway used {load.gateway_cpu:.1f} s of CPU meanwhile "
        f"({load.gateway_cpu / load.seconds:.2f} of a core), "
        f"{1000 * load.gateway_cpu / max(load.answered, 1):.1f} ms per answered request.",
        "",
        "| call | sent | p50 ms | p99 ms | max ms | errors | unanswered at the end |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in CALLS:
        values = load.latencies[name]
        if not values:
            lines.append(f"| GET {name} | 0 | | | | | |")
            continue
        p50, p99, top = (1000 * percentile(values, q) for q in (50, 99, 100))
        lines.append(
            f"| GET {name} | {len(values):,} | {p50:.0f} | {p99:.0f} | {top:.0f} | "
            f"{load.errors[name]} | {load.unanswered[name]} |"
        )
    return lines
