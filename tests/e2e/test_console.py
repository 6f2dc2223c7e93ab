"""The web console in a real Chromium against the real services (each a process, on the real
Kafka and PostgreSQL): an operator signs in, imports keywords, runs the pipeline and watches it
live, pauses and resumes, sees the result, approves an article in the review view and rejects
two at once; another account's site stays out of reach; items held back after failures are
retried from the stage cards; webhook endpoints are added, tested, rotated, disabled (with the
banner) and deleted, and their delivery log read and redelivered. None of it breaks the pages'
Content-Security-Policy. Screenshots at 1280 and 390 px wide land in tmp/artifacts."""

from __future__ import annotations

import csv
import io
import re
import uuid
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect
from tenacity import retry, stop_after_delay, wait_fixed

from contracts.db import tables as t
from contracts.db.pending import FAILURE_BUDGET
from tests.support.browser import (
    assert_accessible,
    assert_no_csp_violations,
    console_page,
    shoot,
    sign_in,
)
from tests.support.gateway import API, Console, console_script, make_tenant, start_console
from tests.support.pipeline import SAMPLE, sample_keywords
from tests.support.webhook_rows import NOWHERE, NOWHERE_NETWORK, insert_attempt, remove_endpoints

pytestmark = [pytest.mark.integration, pytest.mark.browser]
RUN_SECONDS = 240
# Each offline AI call takes this long, so stage 6 (36 images, one at a time) is slow enough
# for the bar to be seen moving item by item, for a pause to land in the middle of it, and for
# the events after the resume to come further apart than a busy gateway bunches them.
WORKER_ENV = {"OFFLINE_LATENCY_MS": "400", "LEASE_SECONDS": "30"}
# Records every (stage, processed) the card shows, and each stage it showed as having no items,
# so what the card did is observed, not sampled.
BAR_RECORDER = """
window.__bar = {};
window.__noItems = new Set();
document.addEventListener("DOMContentLoaded", () => {
  const card = document.getElementById("processing");
  if (!card) return;
  new MutationObserver(() => {
    const { stage, processed, state } = card.dataset;
    if (state !== "running" || stage === undefined) return;
    (window.__bar[stage] = window.__bar[stage] || new Set()).add(processed);
    if (document.getElementById("no-items")) window.__noItems.add(stage);
  }).observe(card, { attributes: true, childList: true, subtree: true });
});
window.__snapshots = 0;
window.EventSource = class extends window.EventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("run.snapshot", () => { window.__snapshots += 1; });
  }
};
"""


@pytest.fixture
def console(services) -> Console:
    """The four services; `url` is the gateway's, `gateway` its process (to restart it)."""
    for name in ("log-sink", "orchestrator"):
        services.start(name, console_script(name), timeout=90)
    services.start("stage-worker", console_script("stage-worker"), env=WORKER_ENV, timeout=90)
    # A fixed secret, so sessions outlive a restart of the gateway, as with several instances.
    return start_console(services, env={"SESSION_SECRET": uuid.uuid4().hex})


@pytest.fixture
def page(browser, console, csp_violations):
    """A page on the console that records what the processing card showed."""
    yield from console_page(browser, console.url, csp_violations, BAR_RECORDER)


def keywords_csv(tmp_path: Path, count: int) -> Path:
    """`count` sample keywords, one repeated, and one row with an impossible difficulty."""
    with SAMPLE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:count]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["keyword", "volume", "difficulty"])
    writer.writeheader()
    writer.writerows([*rows, rows[0], {"keyword": "bad row", "volume": 1, "difficulty": 500}])
    path = tmp_path / "keywords.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def card(page: Page) -> dict[str, str]:
    return page.locator("#processing").evaluate("c => ({...c.dataset})")


def server_progress(page: Page, site_id: int) -> dict:
    answer = page.request.get(f"{API}/current_processing", params={"site_id": site_id})
    assert answer.ok, answer.text()
    return answer.json()


@retry(stop=stop_after_delay(30), wait=wait_fixed(0.3), reraise=True)
def settled_paused_card(page: Page, site_id: int) -> dict[str, str]:
    """The paused card once the item in flight at the pause has landed: equal to the server.
    Pause is cooperative, so until the server lists nothing in flight one more item may land."""
    shown, server = card(page), server_progress(page, site_id)
    assert server["run_status"] == "paused" and shown["state"] == "paused"
    assert server["currently_processing"] == [], "an item in flight at the pause has not landed"
    assert int(shown["stage"]) == server["stage_number"]
    assert int(shown["total"]) == server["total_items"]
    assert int(shown["processed"]) == server["processed_items"] + server["failed_items"]
    return shown


def test_an_operator_runs_the_pipeline_from_the_console(
    page, db, console, tmp_path, csp_violations
):
    tenant = make_tenant(db, console, credits=10_000)
    other = make_tenant(db, console, credits=10)
    page.goto("/")
    shoot(page, "00-sign-in")
    sign_in(page, tenant.token, tenant.site_id)
    expect(page.locator("#stages > li")).to_have_count(7)
    shoot(page, "01-signed-in")

    page.get_by_label("CSV file").set_input_files(keywords_csv(tmp_path, 10))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-summary")).to_have_text("Added 10, duplicates 1, errors 1.")
    expect(page.locator("#import-result li")).to_contain_text("difficulty")
    expect(page.locator('#stages li[data-stage="1"] dd').first).to_have_text("10")
    expect(page.locator("#estimate")).to_contain_text("balance 10000")
    shoot(page, "02-imported")

    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#run-message")).to_contain_text("started")
    expect(page.get_by_role("button", name="Run now")).to_be_disabled()
    expect(page.locator("#run-now-reason")).to_contain_text("one run at a time")

    page.wait_for_function(
        '() => (window.__bar["6"] || new Set()).size >= 10',
        timeout=RUN_SECONDS * 1000,
    )
    shoot(page, "03-running")
    assert_accessible(page, "run-running")
    page.locator("#pause").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#run-state")).to_have_text("Paused")
    paused = settled_paused_card(page, tenant.site_id)
    assert 0 < int(paused["processed"]) < int(paused["total"])
    expect(page.locator(".bar[role=progressbar]")).to_be_visible()
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    page.reload()
    expect(page.locator("#run-state")).to_have_text("Paused")
    assert settled_paused_card(page, tenant.site_id) == paused
    shoot(page, "04-paused")
    assert_accessible(page, "run-paused")

    # From here to the end the page renders the stream's snapshots: it reads no run or
    # processing state besides them, and a snapshot costs it at most one request (the end, once,
    # a few more: figures, estimate, log, review count).
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if f"{API}/" in r.url else None)
    snapshots_before = page.evaluate("() => window.__snapshots")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#run-message")).to_contain_text("running")
    expect(page.locator("#run-result")).to_have_text("Run completed", timeout=RUN_SECONDS * 1000)
    snapshots = page.evaluate("() => window.__snapshots") - snapshots_before
    reads = [u for u in asked if "/events" not in u and "/resume" not in u]
    assert not [u for u in reads if re.search(r"/(current_run|current_processing|run)\?", u)]
    assert snapshots > 10 and len(reads) <= snapshots + 5, (snapshots, reads)
    expect(page.locator("#processing")).to_have_attribute("data-state", "finished")
    expect(page.locator("#stages .tag.status-done")).to_have_count(7)
    expect(page.locator("#log")).to_contain_text("completed")
    expect(page.get_by_role("button", name="Run now")).to_be_enabled()
    shoot(page, "05-completed")

    expect(page.locator("#review-summary")).to_contain_text("wait for review")
    page.get_by_role("link", name="Open the review queue").click()
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review")
    first = page.locator(".review-item").first
    expect(first).to_be_visible()
    first.locator("img").first.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.review-item img')]"
        ".some(i => i.complete && i.naturalWidth > 0)"
    )
    content_id = first.get_attribute("data-content")
    shoot(page, "06-review")
    first.locator(".review-open").click()
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review/{content_id}")
    expect(page.locator("#article-body .article-image img").first).to_be_visible()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#review-message")).to_contain_text("Approved")
    approved = page.request.get(f"{API}/content/{content_id}").json()
    assert approved["status"] == "approved"
    page.get_by_role("link", name="Back to the queue").click()
    expect(page.locator(f'.review-item[data-content="{content_id}"]')).to_have_count(0)
    waiting = page.locator(".review-item").count()
    page.locator(".review-pick").nth(0).check()
    page.locator(".review-pick").nth(1).check()
    page.get_by_role("button", name="Reject selected…").click()
    page.get_by_label("Reason (kept with the article)").fill("Off topic")
    page.get_by_role("button", name="Reject", exact=True).click()
    expect(page.locator("#review-message")).to_have_text("Rejected 2 of 2.")
    expect(page.locator(".review-item")).to_have_count(waiting - 2)
    page.goto(f"/sites/{tenant.site_id}/history")

    page.locator("#history tbody a").first.click()
    expect(page).to_have_url(re.compile(rf"/sites/{tenant.site_id}/history/run_"))
    expect(page.locator("#run-stages tbody tr")).to_have_count(7)
    expect(page.locator("#detail-h")).to_be_focused()
    # What the AI cost beside the credits: the offline provider is free, and priced as such.
    expect(page.locator("#run-cost tbody tr")).to_have_count(7)
    expect(page.locator("#run-cost tfoot")).to_contain_text("$0.0000")
    expect(page.locator("#run-cost")).not_to_contain_text("unknown")
    # The finished run's timeline, drawn by the server from its events: seven stage lanes.
    page.wait_for_function(
        "() => { const i = document.getElementById('timeline'); "
        "return i && i.complete && i.naturalWidth > 0; }"
    )
    expect(page.locator("#timeline")).to_have_attribute("alt", re.compile("stage 7 completed"))
    expect(page.locator("#failed-items")).to_have_text("No item failed.")
    svg = page.request.get(page.locator("#timeline").get_attribute("src")).text()
    assert svg.count("<title>stage ") == 7 and "Items in flight" in svg
    shoot(page, "07-run-detail")
    assert_accessible(page, "run-detail")
    page.get_by_role("link", name="Run", exact=True).click()
    page.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#processing")).to_have_attribute("data-state", "idle")

    foreign = page.goto(f"/sites/{other.site_id}")
    assert foreign is not None and foreign.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    shoot(page, "08-foreign-site")
    assert_no_csp_violations(page, csp_violations)


def focus_order(page: Page) -> list[str]:
    """Ids (or names) of what Tab reaches, once round the page."""
    page.locator("body").focus()
    seen: list[str] = []
    for _ in range(120):
        page.keyboard.press("Tab")
        here = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e === document.body ? '' : e.id || e.name || e.textContent.trim(); }"
        )
        if here and here in seen[:1]:
            break
        seen.append(here)
    return seen


def test_keyboard_alone_labels_phone_width_and_empty_stages(
    page, db, console, tmp_path, csp_violations
):
    tenant = make_tenant(db, console, credits=1)
    page.goto("/")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(tenant.token)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"/sites/{tenant.site_id}")
    expect(page.locator("#live-status")).not_to_have_text("Connecting…")  # the script is up
    # The configuration is a view of its own, reached by keyboard from the views' links.
    page.get_by_role("link", name="Configuration").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"/sites/{tenant.site_id}/config")
    expect(page.locator("#cfg-stage_concurrency")).to_be_visible()
    expect(page.locator("#config-h")).to_be_focused()

    unlabelled = page.evaluate(
        "() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(f => !f.labels || f.labels.length === 0).map(f => f.id || f.name)"
    )
    assert unlabelled == []
    reached = focus_order(page)
    for control in (
        "site-picker",
        "Open",
        "Sign out",
        "Run",
        "Review",
        "Content",
        "History",
        "Usage",
        "cfg-is_enabled",
        "cfg-frequency",
        "cfg-stage_concurrency",
        "Save configuration",
    ):
        assert control in reached, f"Tab never reaches {control}: {reached}"

    page.locator("#cfg-stage_1_batch_size").fill("0")
    page.keyboard.press("Enter")
    expect(page.locator("#cfg-stage_1_batch_size-error")).to_contain_text("greater than")
    expect(page.locator("#cfg-stage_1_batch_size")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#cfg-stage_1_batch_size")).to_be_focused()
    page.locator("#cfg-stage_1_batch_size").fill("10")
    page.keyboard.press("Enter")
    expect(page.locator("#config-message")).to_have_text("Saved.")
    expect(page.locator("#cfg-stage_1_batch_size-error")).to_have_text("")
    page.go_back()
    expect(page).to_have_url(f"/sites/{tenant.site_id}")
    reached = focus_order(page)
    for control in ("run-now", "log-lines", "log", "open-review", "import-file", "Import"):
        assert control in reached, f"Tab never reaches {control}: {reached}"

    page.locator("#run-now").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#run-result")).to_have_text("Run completed", timeout=RUN_SECONDS * 1000)
    assert page.evaluate("() => window.__noItems.size") >= 1, "no stage showed 'no items'"
    # A page that missed the end (another operator's tab) still hears the server's reason.
    press_cancel_on_a_finished_run(page)
    expect(page.locator("#run-message")).to_contain_text("can no longer be changed")
    page.locator("#dismiss").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#processing")).to_have_attribute("data-state", "idle")
    expect(page.locator("#run-now")).to_be_focused()

    page.get_by_label("CSV file").set_input_files(keywords_csv(tmp_path, 30))
    page.locator("#import-form button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#import-summary")).to_contain_text("Added 30")
    expect(page.locator("#run-now")).to_be_disabled()
    expect(page.locator("#run-now-reason")).to_have_text(
        "Not enough credits: starting needs 8 (1.2 × 6, the pending work), the balance is 1."
    )
    expect(page.locator("#estimate")).to_contain_text("runs out in stage 1")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, "08-empty-run-keyboard")
    assert_no_csp_violations(page, csp_violations)


@retry(stop=stop_after_delay(15), wait=wait_fixed(0.5), reraise=True)
def press_cancel_on_a_finished_run(page: Page) -> None:
    """Enable Cancel as a page that missed the end would have it, and press it by keyboard. A
    reload still in flight from the end of the run may render the controls again (disabling
    Cancel) between the two steps; then the press did nothing, and it is done again."""
    page.evaluate("() => { document.getElementById('cancel').disabled = false; }")
    page.locator("#cancel").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#run-message")).not_to_have_text("", timeout=2000)


def bar_values(page: Page, stage: int) -> int:
    return page.evaluate(f"() => (window.__bar['{stage}'] || new Set()).size")


def test_the_card_keeps_up_across_a_restart_of_the_gateway(page, db, console, csp_violations):
    tenant = make_tenant(db, console, credits=10_000)
    rows = [{"keyword": k.keyword} for k in sample_keywords(10)]
    imported = tenant.client.post(
        f"{API}/keywords/import", params={"site_id": tenant.site_id}, json=rows
    )
    assert imported.status_code == 200
    sign_in(page, tenant.token, tenant.site_id)
    page.get_by_role("button", name="Run now").click()
    page.wait_for_function(
        "() => (window.__bar['6'] || new Set()).size >= 3", timeout=RUN_SECONDS * 1000
    )
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#run-state")).to_have_text("Paused")
    paused = settled_paused_card(page, tenant.site_id)

    console.gateway.stop()
    expect(page.locator("#live-status")).to_contain_text("Reconnecting")
    console.gateway.start().wait_ready()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=60_000)
    assert settled_paused_card(page, tenant.site_id) == paused

    seen_before = bar_values(page, 6)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#run-result")).to_have_text("Run completed", timeout=RUN_SECONDS * 1000)
    assert bar_values(page, 6) > seen_before, "the bar moved again after the restart"
    assert_no_csp_violations(page, csp_violations)


def hold_back(db: sa.Engine, site_id: int) -> None:
    """The failure state the stage workers leave behind: two clusters that failed stage 2 as
    often as the budget allows (held back), one that failed once (still picked), and an image
    whose generation failed (held back at once)."""
    with db.begin() as conn:

        def add(table: sa.Table, **values: object) -> int:
            insert = sa.insert(table).values(site_id=site_id, **values).returning(table.c.id)
            return conn.execute(insert).scalar_one()

        for name, failures in {"a": FAILURE_BUDGET, "b": FAILURE_BUDGET, "c": 1}.items():
            cluster = add(t.clusters, name=name, source_key=f"kw:{name}")
            conn.execute(
                sa.insert(t.item_failures).values(
                    stage=2,
                    item_id=cluster,
                    site_id=site_id,
                    failures=failures,
                    last_error="unparseable answer",
                    last_run_id="run_earlier",
                )
            )
        cluster = add(t.clusters, name="illustrated", source_key="kw:illustrated")
        idea = add(t.content_ideas, cluster_id=cluster, title="An idea", position=0)
        task = add(t.tasks, idea_id=idea, title="Write: an idea")
        content = add(t.content, task_id=task, title="An article", body="Text.", word_count=1)
        add(t.images, content_id=content, kind="featured", position=0, prompt="p", status="failed")


def failure_state(db: sa.Engine, site_id: int) -> tuple[int, list[str]]:
    """The site's item_failures rows, and the statuses of its images."""
    f, i = t.item_failures.c, t.images.c
    with db.connect() as conn:
        failures = conn.execute(sa.select(sa.func.count()).where(f.site_id == site_id))
        images = conn.execute(sa.select(i.status).where(i.site_id == site_id))
        return failures.scalar_one(), list(images.scalars())


def test_held_back_items_are_retried_from_the_stage_cards(page, db, console, csp_violations):
    tenant = make_tenant(db, console, credits=10)
    hold_back(db, tenant.site_id)
    sign_in(page, tenant.token, tenant.site_id)
    stage_2 = page.locator('#stages li[data-stage="2"]')
    stage_6 = page.locator('#stages li[data-stage="6"]')
    expect(stage_2.locator(".held p")).to_have_text("2 held back after repeated failures")
    expect(stage_2.locator("dd").first).to_have_text("1")
    expect(stage_6.locator(".held p")).to_have_text("1 failed image held back")
    expect(page.locator("#stages .held")).to_have_count(2)
    expect(page.get_by_role("button", name="Retry all failed")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(page, "09-held-back")

    page.locator("#retry-all").focus()
    page.keyboard.press("Tab")
    expect(stage_2.get_by_role("button", name="Retry stage 2")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#stages-message")).to_have_text(
        "Released 2 items of stage 2; runs will pick them again."
    )
    expect(stage_2.locator(".held")).to_have_count(0)
    expect(stage_2.locator("dd").first).to_have_text("3")
    expect(page.locator("#stages-h")).to_be_focused()
    assert failure_state(db, tenant.site_id) == (0, ["failed"])

    page.keyboard.press("Tab")
    expect(page.locator("#retry-all")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#stages-message")).to_have_text(
        "Released 1 item; runs will pick it again."
    )
    expect(page.locator("#stages .held")).to_have_count(0)
    expect(page.locator("#retry-all")).to_be_hidden()
    expect(page.locator("#stages-h")).to_be_focused()
    assert failure_state(db, tenant.site_id) == (0, ["pending"])
    assert_no_csp_violations(page, csp_violations)


@pytest.fixture
def hooks_console(services) -> Console:
    """A gateway alone (the webhooks view needs no run), whose endpoints may point at
    TEST-NET-1, where nothing answers."""
    return start_console(services, env={"WEBHOOK_ALLOWED_NETWORKS": NOWHERE_NETWORK})


@pytest.fixture
def hooks_page(browser, hooks_console, csp_violations):
    yield from console_page(browser, hooks_console.url, csp_violations)


def test_an_operator_manages_webhooks_from_the_console(
    hooks_page, hooks_console, db, csp_violations
):
    page = hooks_page
    tenant = make_tenant(db, hooks_console)
    try:
        sign_in(page, tenant.token, tenant.site_id)
        page.get_by_role("banner").get_by_role("link", name="Webhooks").click()
        expect(page).to_have_url("/webhooks")
        expect(page.locator("#endpoints")).to_have_text("No endpoints yet.")

        page.get_by_label("URL (https)").fill("https://127.0.0.1/hooks")
        page.get_by_label("run.failed").check()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.locator("#hook-url-error")).to_have_text("url: 127.0.0.1 is a loopback address")
        expect(page.get_by_label("URL (https)")).to_be_focused()
        page.get_by_label("URL (https)").fill(NOWHERE)
        page.locator(f"#hook-site-{tenant.site_id}").check()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.locator("#secret-value")).to_contain_text("whsec_")
        expect(page.locator("#secret-h")).to_be_focused()
        secret = page.locator("#secret-value").text_content()
        [made] = page.request.get(f"{API}/webhooks").json()["items"]
        assert made["site_ids"] == [tenant.site_id] and made["event_types"] == ["run.failed"]
        assert page.request.get(f"{API}/webhooks/{made['id']}/secret").json()["secret"] == secret
        shoot(page, "10-webhook-created")

        page.get_by_role("button", name=f"Send test: {NOWHERE}").click()
        expect(page.locator("#hooks-message")).to_contain_text("queued")
        page.get_by_role("button", name=f"Delivery log: {NOWHERE}").click()
        expect(page.locator("#log-h")).to_be_focused()
        row = page.locator("#deliveries tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("webhook.test")
        delivery = row.get_attribute("data-delivery")
        insert_attempt(db, UUID(delivery), 1, error="connection refused", status=None)
        page.get_by_role("button", name=f"Attempts of {delivery}").click()
        expect(page.locator("#attempts tbody tr")).to_contain_text("connection refused")
        page.get_by_role("button", name=f"Redeliver {delivery}").click()
        expect(page.locator("#log-message")).to_contain_text("same webhook-id")
        shoot(page, "11-webhook-log")

        page.get_by_role("button", name=f"Rotate secret: {NOWHERE}").click()
        expect(page.locator("#secret-value")).not_to_have_text(secret)
        expect(page.locator("#secret-box")).to_contain_text("previous secret also signs")

        page.get_by_role("button", name=f"Disable: {NOWHERE}").click()
        banner = page.locator("#webhook-banner")
        expect(banner).to_contain_text(f"{NOWHERE}: disabled by its owner")
        expect(page.locator("#deliveries tbody tr .tag")).to_have_text("failed")
        page.goto(f"/sites/{tenant.site_id}")
        expect(banner).to_contain_text("A webhook endpoint is disabled.")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        shoot(page, "12-webhook-banner")

        page.goto("/webhooks")
        page.get_by_role("button", name=f"Enable: {NOWHERE}").click()
        expect(banner).to_be_hidden()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=f"Delete: {NOWHERE}").click()
        expect(page.locator("#endpoints")).to_have_text("No endpoints yet.")
        assert page.request.get(f"{API}/webhooks").json()["total"] == 0
        assert_no_csp_violations(page, csp_violations)
    finally:
        remove_endpoints(db, tenant.account_id)
