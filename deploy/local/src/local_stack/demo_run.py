"""The demo's run: start it through the REST API the way the front end would, show each stage's
progress as a bar, and end with a summary of what the run made and what it cost."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from contracts.stages import STAGES
from contracts.state import FINISHED
from local_stack.processes import StackError

API = "/api/v1/automation"
POLL_SECONDS = 0.3
# The demo site's batches of one stage in flight at once (the default is 1): stage 6's 300
# images go four at a time, as an operator would set it for a site that wants its run soon.
CONCURRENCY = 4


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    run: dict[str, Any]


class ApiError(StackError):
    """The gateway answered something the demo cannot go on from."""


def configure(client: httpx.Client, site_id: int) -> None:
    response = client.put(
        f"{API}/update_config", params={"site_id": site_id}, json={"stage_concurrency": CONCURRENCY}
    )
    if response.status_code != 200:
        raise ApiError(f"update_config answered {response.status_code}: {response.text}")


def start_run(client: httpx.Client, site_id: int) -> str:
    response = client.post(f"{API}/run_now", params={"site_id": site_id})
    if response.status_code != 200:
        raise ApiError(f"run_now answered {response.status_code}: {response.text}")
    return response.json()["run_id"]


def find_run(client: httpx.Client, run_id: str) -> dict[str, Any] | None:
    """The run with its seven stage results; None until the read model has it."""
    response = client.get(f"{API}/run", params={"run_id": run_id})
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ApiError(f"GET run answered {response.status_code}: {response.text}")
    return response.json()


def follow(
    client: httpx.Client, run_id: str, console: Console, timeout_s: float = 900.0
) -> RunOutcome:
    """Poll the run until it ends, one progress bar per stage."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bars = {
            n: progress.add_task(f"{n}. {s.name}", total=None, start=False)
            for n, s in STAGES.items()
        }
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = find_run(client, run_id)
            if run is not None:
                _update_bars(progress, bars, run)
                if run.get("status") in FINISHED:
                    return RunOutcome(run_id, run["status"], run)
            time.sleep(POLL_SECONDS)
    raise ApiError(f"run {run_id} did not finish in {timeout_s:.0f} s")


def _update_bars(progress: Progress, bars: dict[int, Any], run: dict[str, Any]) -> None:
    for stage in run.get("stages", []):
        bar = bars[stage["stage_number"]]
        if stage.get("status") == "pending":
            continue
        total = stage.get("items_in", 0)
        done = stage.get("processed_items", 0) + stage.get("failed_items", 0)
        if stage.get("status") == "completed":
            done = total  # the review gate only counts; a finished stage is full
        progress.start_task(bar)
        progress.update(bar, total=max(total, 1), completed=done if total else 1)


def summary(run: dict[str, Any], balance: int, log_dir: str, console: Console) -> None:
    table = Table(title=f"Run {run['run_id']}: {run['status']}", min_width=100)
    for column in ("stage", "name", "in", "processed", "failed", "out", "credits", "elapsed s"):
        table.add_column(column)
    for stage in run.get("stages", []):
        elapsed = stage.get("elapsed_seconds")
        table.add_row(
            str(stage["stage_number"]),
            stage["stage_name"],
            str(stage.get("items_in", 0)),
            str(stage.get("processed_items", 0)),
            str(stage.get("failed_items", 0)),
            str(stage.get("items_out", 0)),
            str(stage.get("credits_used", 0)),
            f"{elapsed:.1f}" if isinstance(elapsed, int | float) else "-",
        )
    console.print(table)
    review = next((s for s in run.get("stages", []) if s["stage_number"] == 7), {})
    console.print(f"[bold]Ready for review[/] {review.get('items_in', 0)} articles")
    console.print(f"[bold]Credits used[/] {run.get('credits_used', 0)}; balance now {balance}")
    if run.get("error"):
        console.print(f"[bold red]Error[/] {run['error']}")
    console.print(f"[bold]Logs[/] {log_dir}")
