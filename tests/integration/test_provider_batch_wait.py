"""An economy run's stage waiting for the provider's batch, from the events on the topic to the
API: the log-sink folds them into the read model and its files, the gateway reads the row into
current_processing, current_run and run, and the wait ends when the stage batch completes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from api_gateway.run_commands import new_run_id
from contracts import events as ev
from contracts import run_logs
from contracts.values import ItemRef
from tests.support.gateway import console_script, make_tenant, run_event, start_console
from tests.support.kafka import publish
from tests.support.wait import wait_until


@pytest.fixture
def sink_and_gateway(services) -> SimpleNamespace:
    services.start("log-sink", console_script("log-sink"), timeout=90)
    url = start_console(services).url
    return SimpleNamespace(url=url, logs=services.base_env["LOG_BASE_DIR"])


def report(status: str, completed: int, failed: int, since: datetime):
    return ev.StageWaitingForProviderBatch(
        stage=4,
        batch_id="4-1",
        provider="openai",
        provider_batch_ids=("batch_abc", "batch_def"),
        status=status,
        total=300,
        completed=completed,
        failed=failed,
        since=since,
    )


async def test_a_wait_for_the_providers_batch_reaches_the_api_and_the_logs(
    db, stack, topics, sink_and_gateway
):
    tenant = make_tenant(db, sink_and_gateway, credits=100)
    run_id = new_run_id()
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    tasks = tuple(ItemRef(id=i, title=f"task {i}") for i in range(1, 301))
    lease = datetime.now(UTC) + timedelta(hours=25)
    events = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=4, items=tasks),
        ev.StageBatchDispatched(
            stage=4, batch_id="4-1", item_ids=tuple(t.id for t in tasks), lease_until=lease
        ),
        report("validating", 0, 0, since),
        report("in_progress", 120, 2, since),
    ]
    await publish(
        stack.kafka_bootstrap,
        topics.run_events,
        *(run_event(tenant, run_id, payload) for payload in events),
    )

    def shown() -> dict | None:
        answer = tenant.get("/current_processing", site_id=tenant.site_id).json()
        wait = answer.get("waiting_for_provider_batch")
        return wait if wait and wait["status"] == "in_progress" else None

    wait = wait_until(shown, what="the provider's batch in current_processing")
    assert wait == {
        "provider": "openai",
        "provider_batch_ids": ["batch_abc", "batch_def"],
        "status": "in_progress",
        "total": 300,
        "completed": 120,
        "failed": 2,
        "since": wait["since"],
    }
    assert datetime.fromisoformat(wait["since"]) == since
    run = tenant.get("/current_run", site_id=tenant.site_id).json()["run"]
    assert run["waiting_for_provider_batch"] == wait
    assert run["stages"][3]["waiting_for_provider_batch"] == wait
    assert run["stages"][2]["waiting_for_provider_batch"] is None
    assert tenant.get("/run", run_id=run_id).json()["stages"][3]["waiting_for_provider_batch"] == (
        wait
    )

    folder = run_logs.run_dir(
        Path(sink_and_gateway.logs), tenant.account_id, tenant.site_id, run_id
    )
    stage_log = folder / run_logs.stage_log(4)
    wait_until(
        lambda: stage_log.exists() and "120 of 300 answered, 2 failed" in stage_log.read_text(),
        what="the wait in the stage's log",
    )
    assert "in_progress, 120 of 300 answered, 2 failed" in stage_log.read_text().splitlines()[-1]
    traced = [json.loads(line) for line in (folder / run_logs.TRACE).read_text().splitlines()]
    waits = [t for t in traced if t["event"] == "stage_waiting_for_provider_batch"]
    assert [(t["status"], t["completed"]) for t in waits] == [
        ("validating", 0),
        ("in_progress", 120),
    ]

    answered = ev.StageBatchCompleted(stage=4, batch_id="4-1", processed=298, failed=2, credits=0)
    await publish(stack.kafka_bootstrap, topics.run_events, run_event(tenant, run_id, answered))

    def cleared() -> bool:
        answer = tenant.get("/current_processing", site_id=tenant.site_id).json()
        return answer["waiting_for_provider_batch"] is None

    wait_until(cleared, what="the wait to end with the stage batch")
    stage = tenant.get("/run", run_id=run_id).json()["stages"][3]
    assert stage["status"] == "running" and stage["waiting_for_provider_batch"] is None
