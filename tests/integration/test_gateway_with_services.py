"""The gateway with the real orchestrator, stage workers and log-sink as processes: a run started
over HTTP goes to the end, the live stream shows every processed item in order, and the read
model answers current_run, current_processing (items in flight while they are), history and
logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.support.gateway import API, console_script, make_tenant, start_console
from tests.support.wait import wait_until


def _start_all(services, worker_env: dict[str, str] | None = None) -> tuple[str, dict]:
    for name in ("log-sink", "orchestrator"):
        services.start(name, console_script(name), timeout=90)
    services.start("stage-worker", console_script("stage-worker"), env=worker_env, timeout=90)
    return start_console(services).url, services.base_env


@pytest.fixture
def stack_of_services(services):
    return _start_all(services)


@pytest.fixture
def services_with_slow_ai(services):
    """Each offline AI call takes 200 ms, as a real provider takes its time."""
    return _start_all(services, {"OFFLINE_LATENCY_MS": "200"})


RUN_DEADLINE_SECONDS = 150


def _events(client: httpx.Client, run_id: str) -> list[dict]:
    """The run's live events until the stream ends (or the deadline passes: then the test fails
    on the last event instead of hanging)."""
    events, event = [], {}
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS
    with client.stream("GET", f"{API}/runs/{run_id}/events", timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                break
            if line.startswith(("event:", "data:")):
                name, _, value = line.partition(": ")
                event[name.rstrip(":")] = value
            elif line == "" and event:
                events.append(event)
                event = {}
    return events


def test_a_run_over_http_with_the_real_services(db, stack_of_services):
    url, env = stack_of_services

    tenant = make_tenant(db, SimpleNamespace(url=url), credits=10_000)
    rows = [{"keyword": f"garden tip {i}"} for i in range(6)]
    run_id = tenant.import_and_run(rows)
    again = tenant.post("/run_now", site_id=tenant.site_id)
    assert again.status_code == 400 and again.json()["code"] == "active_run"
    events = _events(tenant.client, run_id)
    assert events, "the live stream pushed nothing"
    assert events[-1]["event"] in ("automation.run.completed", "run.finished")
    processed = [json.loads(e["data"]) for e in events if e["event"].endswith("item-processed")]
    assert processed, "the live stream shows the items as they are processed"
    by_stage: dict[int, list[int]] = {}
    for event in processed:
        by_stage.setdefault(event["data"]["stage"], []).append(event["data"]["item"]["id"])
    assert all(len(ids) == len(set(ids)) for ids in by_stage.values())

    def finished_history() -> list[dict]:
        runs = tenant.get("/history", site_id=tenant.site_id).json()["runs"]
        return runs if runs and runs[0]["status"] == "completed" else []

    history = wait_until(finished_history, every=0.5, what="the run in the history")
    assert history[0]["run_id"] == run_id and history[0]["status"] == "completed"
    assert tenant.get("/current_run", site_id=tenant.site_id).json()["run"] is None
    state = tenant.get("/current_processing", site_id=tenant.site_id, run_id=run_id).json()
    assert state["run_status"] == "completed" and state["stage_type"] in ("AI", "Local", "Manual")
    # The log-sink writes the main log, the gateway (another process) tails it.
    main_log = (
        Path(env["LOG_BASE_DIR"])
        / str(tenant.account_id)
        / str(tenant.site_id)
        / run_id
        / "automation_run.log"
    )
    on_disk = main_log.read_text().splitlines()
    assert len(on_disk) > 50
    logs = tenant.get("/logs", run_id=run_id, lines=50).json()
    assert logs["file_exists"] is True
    assert logs["lines"] == on_disk[-50:]
    assert tenant.post("/pause", run_id=run_id).status_code == 400
    assert tenant.get("/content", site_id=tenant.site_id).json()["total"] > 0


def _processed_in_trace(env: dict, tenant, run_id: str) -> set[tuple[int, int]]:
    trace = (
        Path(env["LOG_BASE_DIR"])
        / str(tenant.account_id)
        / str(tenant.site_id)
        / run_id
        / "run_trace.jsonl"
    )
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    return {
        (line["stage"], line["item"]["id"])
        for line in lines
        if line["event"] == "stage_item_processed"
    }


def test_current_processing_lists_the_items_in_flight_then_a_finished_gate(
    db, services_with_slow_ai
):
    url, env = services_with_slow_ai
    tenant = make_tenant(db, SimpleNamespace(url=url), credits=10_000)
    rows = [{"keyword": f"pond plant {i}"} for i in range(6)]
    run_id = tenant.import_and_run(rows)

    def busy_one_item_stage() -> dict | None:
        """A sample of stages 4-6 (one item a batch) with an item in flight."""
        answer = tenant.get("/current_processing", site_id=tenant.site_id, run_id=run_id)
        if answer.status_code != 200:
            return None  # the log-sink has not written the run yet
        state = answer.json()
        in_flight = state["stage_number"] >= 4 and state["currently_processing"]
        return state if state["run_status"] == "running" and in_flight else None

    busy = wait_until(busy_one_item_stage, timeout=120, every=0.05, what="an item in flight")
    current = [item["id"] for item in busy["currently_processing"]]
    assert all(item["title"] for item in busy["currently_processing"])
    assert not set(current) & {item["id"] for item in busy["up_next"]}
    assert busy["processed_items"] + busy["failed_items"] < busy["total_items"]
    assert busy["remaining_count"] >= len(current) + len(busy["up_next"])

    def finished() -> dict | None:
        state = tenant.get("/current_processing", site_id=tenant.site_id, run_id=run_id).json()
        return state if state["run_status"] == "completed" else None

    done = wait_until(finished, timeout=150, every=0.5, what="the run completed")
    # What was in flight was then processed.
    processed = _processed_in_trace(env, tenant, run_id)
    assert {(busy["stage_number"], item_id) for item_id in current} <= processed
    # The review gate of a completed run reads as done, not as 0 % with everything remaining.
    assert (done["stage_number"], done["stage_type"], done["stage_status"]) == (
        7,
        "Manual",
        "completed",
    )
    assert done["total_items"] > 0 and done["processed_items"] == done["total_items"]
    assert (done["percentage"], done["remaining_count"]) == (100.0, 0)
    assert done["currently_processing"] == [] and done["up_next"] == []
