"""Economy mode in a real Chromium against the gateway alone: the configuration form sets the AI
mode with its line of explanation, the Run view prices the pending work in both modes, the
current-processing card of a run waiting for the provider's batch says how far the batch is
(from the live stream's snapshot of the run's events on the topic), and the run detail and the
usage view say what the batch interface saved."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from api_gateway.run_commands import new_run_id
from contracts import events as ev
from contracts.db import tables as t
from contracts.values import ItemRef
from tests.support.browser import assert_accessible, assert_no_csp_violations, shoot, sign_in
from tests.support.gateway import API, insert_run, make_tenant, run_event
from tests.support.kafka import publish

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def economy_history(db, tenant) -> str:
    """Ten pending keywords, and a finished run whose stage 1 went through the provider's batch:
    20 keywords for $0.001, saving as much. The run's id."""
    run_id = insert_run(db, tenant, status="completed", stage=7, ended_at=datetime.now(UTC))
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.keywords),
            [{"site_id": tenant.site_id, "text": f"keyword {n}"} for n in range(10)],
        )
        conn.execute(
            sa.insert(t.ai_calls).values(
                account_id=tenant.account_id, site_id=tenant.site_id, run_id=run_id, stage=1,
                outcome="answered", at=datetime.now(UTC), batch_id="1-1", items=20,
                provider="openai", function="complete", model_requested="gpt-4o-mini",
                model_answered="gpt-4o-mini", latency_ms=100, attempt=1, price_version="t",
                via="provider_batch", cost_usd=Decimal("0.001"), saved_usd=Decimal("0.001"),
            )
        )  # fmt: skip
    return run_id


def run_waiting_for_the_providers_batch(db, stack, topics, tenant, since: datetime) -> str:
    """A run whose stage 4 batch of 300 tasks waits for the provider's batch, on the topic and
    in the read model where the stream finds its events."""
    run_id = new_run_id()
    tasks = tuple(ItemRef(id=i, title=f"task {i}") for i in range(1, 301))
    lease = datetime.now(UTC) + timedelta(hours=25)
    report = ev.StageWaitingForProviderBatch(
        stage=4, batch_id="4-1", provider="openai", provider_batch_ids=("batch_abc",),
        status="in_progress", total=300, completed=120, failed=2, since=since,
    )  # fmt: skip
    payloads = [
        ev.RunStarted(trigger="manual"),
        ev.StageStarted(stage=4, items=tasks),
        ev.StageBatchDispatched(
            stage=4, batch_id="4-1", item_ids=tuple(t.id for t in tasks), lease_until=lease
        ),
        report,
    ]
    events = [run_event(tenant, run_id, payload) for payload in payloads]
    # Playwright's sync API runs an event loop in this thread: publish from another one.
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(
            asyncio.run, publish(stack.kafka_bootstrap, topics.run_events, *events)
        )
        first, *_ = sending.result(timeout=30)
    insert_run(
        db,
        tenant,
        run_id=run_id,
        stage=4,
        stream_partition=first.partition,
        first_offset=first.offset,
    )
    return run_id


def test_economy_mode_in_the_console(page, db, stack, topics, console, csp_violations):
    tenant = make_tenant(db, console, credits=1000)
    base = f"/sites/{tenant.site_id}"
    finished = economy_history(db, tenant)
    since = datetime.now(UTC) - timedelta(hours=1)
    run_waiting_for_the_providers_batch(db, stack, topics, tenant, since)
    sign_in(page, tenant.token, tenant.site_id)

    wait = page.locator("#provider-batch-wait")
    expect(wait).to_contain_text(
        "Waiting for the provider's batch: 120 of 300 answered, 2 failed — in_progress since"
    )
    expect(wait).to_have_attribute("role", "status")
    # 10 keywords at $0.0001 each, the standard price of the batch calls (cost + saving).
    expect(page.locator("#estimate-money")).to_have_text(
        "AI cost of the pending work: $0.0010 standard, $0.0005 economy "
        "(from the site's calls of the last 30 days)."
    )
    assert_accessible(page, "economy-run")
    shoot(page, "economy-run")

    page.goto(f"{base}/config")
    mode = page.get_by_label("AI mode")
    expect(mode).to_have_value("standard")
    expect(page.locator("#cfg-ai_mode-hint")).to_contain_text("50% of the price")
    expect(mode).to_have_attribute("aria-describedby", "cfg-ai_mode-hint cfg-ai_mode-error")
    expect(page.locator("#config-money")).to_contain_text("$0.0005 economy")
    shoot(page, "economy-config")
    mode.select_option("economy")
    page.get_by_role("button", name="Save configuration").click()
    expect(page.locator("#config-message")).to_have_text("Saved.")
    config = page.request.get(f"{API}/config", params={"site_id": tenant.site_id}).json()
    assert config["ai_mode"] == "economy"
    expect(page.get_by_label("AI mode")).to_have_value("economy")

    page.goto(f"{base}/history/{finished}")
    expect(page.locator("#run-saved")).to_have_text(
        "Saved $0.0010 through the provider's batch interface (1 call)."
    )
    page.goto(f"{base}/usage")
    expect(page.locator("#usage-saved")).to_have_text(
        "Saved $0.0010 through the provider's batch interface (1 call)."
    )
    assert_no_csp_violations(page, csp_violations)
