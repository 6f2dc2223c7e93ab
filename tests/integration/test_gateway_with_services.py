"""The gateway with the real orchestrator, stage workers and log-sink as processes: a run started
over HTTP goes to the end, the live stream shows every processed item in order, and the read
model answers current_run, current_processing, history and logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.integration.test_gateway_support import API, console_script, make_tenant
from tests.support.services import free_port
from tests.support.wait import wait_until


@pytest.fixture
def stack_of_services(services):
    port = free_port()
    for name in ("log-sink", "orchestrator", "stage-worker"):
        services.start(name, console_script(name), timeout=90)
    services.start("gateway", console_script("api-gateway"), env={"GATEWAY_PORT": str(port)})
    return f"http://127.0.0.1:{port}", services.base_env


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
    assert (
        tenant.client.post(
            f"{API}/keywords/import", params={"site_id": tenant.site_id}, json=rows
        ).status_code
        == 200
    )
    started = tenant.post("/run_now", site_id=tenant.site_id)
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
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
