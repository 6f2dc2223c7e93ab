"""The site's views in a real Chromium, each at its own address: Run, Review, Content, History
(with a run's detail), Configuration, Usage and Webhooks. Moving between them by their links
keeps the browser's history, so back and forward show each view again, and an address opened
afresh shows the same view; the content and history filters live in the address too. At 390 px
no view scrolls sideways, and axe-core (vendored from npm, tests/support/axe) finds no serious
or critical violation on any. Screenshots of each view and axe's results land in
tmp/artifacts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from contracts.db import tables as t
from tests.support.browser import assert_accessible, assert_no_csp_violations, shoot, sign_in
from tests.support.content import add_article
from tests.support.gateway import insert_run, insert_stage, make_tenant

pytestmark = [pytest.mark.integration, pytest.mark.browser]
VIEWS = {  # name of the link -> the address after /sites/{id}, and what shows it
    "Run": ("", "#run-now"),
    "Content": ("/content", "#content-table"),
    "History": ("/history", "#history"),
    "Configuration": ("/config", "#cfg-frequency"),
    "Usage": ("/usage", "#usage-days"),
    "Review": ("/review", "#queue"),
    "Webhooks": ("/webhooks", "#hooks-message"),
}


def site_with_history(db, console) -> SimpleNamespace:
    """A site with 60 keywords, an article, and three runs: completed yesterday (scheduled),
    failed today (manual), cancelled today (manual)."""
    tenant = make_tenant(db, console, credits=100)
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.keywords),
            [
                {"site_id": tenant.site_id, "text": f"keyword {n:02d}", "volume": n}
                for n in range(60)
            ],
        )
    add_article(db, tenant.site_id, title="Gardening for beginners", images=0)
    # One run yesterday (UTC) and two earlier today, whatever the time of day: hours before
    # now would be yesterday too in the first hours after midnight.
    now = datetime.now(UTC)
    today = datetime.combine(now.date(), time(0), UTC)
    runs = {}
    for status, trigger, started in (
        ("completed", "scheduled", today - timedelta(hours=12)),
        ("failed", "manual", today + (now - today) / 3),
        ("cancelled", "manual", today + (now - today) * 2 / 3),
    ):
        run_id = insert_run(db, tenant, status=status, started_at=started, ended_at=started)
        with db.begin() as conn:
            runs_table = t.automation_runs
            conn.execute(
                sa.update(runs_table).where(runs_table.c.run_id == run_id).values(trigger=trigger)
            )
        insert_stage(db, run_id, 1, status="completed", total_items=3, processed_items=3)
        runs[status] = run_id
    return SimpleNamespace(tenant=tenant, runs=runs, yesterday=(today - timedelta(days=1)).date())


def view_link(page: Page, name: str):
    return page.get_by_role("navigation", name="Views of this site").get_by_role(
        "link", name=name, exact=True
    )


def test_each_view_has_its_address_and_back_and_forward_move_between_them(
    page, db, console, csp_violations
):
    site = site_with_history(db, console)
    tenant = site.tenant
    base = f"/sites/{tenant.site_id}"
    sign_in(page, tenant.token, tenant.site_id)

    # Each view by its link: its address, its content, the link marked as the current one.
    visited = []
    for name, (path, shown) in VIEWS.items():
        view_link(page, name).click()
        expect(page).to_have_url(f"{base}{path}")
        expect(page.locator(shown)).to_be_attached()
        expect(view_link(page, name)).to_have_attribute("aria-current", "page")
        visited.append(name)
    # Back through all of them, then forward again: each view shows once more.
    for name in reversed(visited[:-1]):
        page.go_back()
        path, shown = VIEWS[name]
        expect(page).to_have_url(f"{base}{path}")
        expect(page.locator(shown)).to_be_visible()
        expect(view_link(page, name)).to_have_attribute("aria-current", "page")
    for name in visited[1:]:
        page.go_forward()
        path, shown = VIEWS[name]
        expect(page).to_have_url(f"{base}{path}")
        expect(page.locator(shown)).to_be_attached()

    # Content: a page of 50 keywords, the next page, a search; all in the address.
    page.goto(f"{base}/content")
    rows = page.locator("#content-table tbody tr")
    expect(rows).to_have_count(50)
    expect(page.locator("#content-count")).to_have_text("Keywords: 1–50 of 62")
    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(f"{base}/content?kind=keywords&offset=50")
    expect(rows).to_have_count(12)
    page.locator("#content-q").fill("keyword 1")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(f"{base}/content?kind=keywords&q=keyword+1")
    expect(rows).to_have_count(10)
    page.get_by_role("link", name="Articles").click()
    expect(page).to_have_url(f"{base}/content?kind=content")
    expect(page.get_by_role("link", name="Gardening for beginners")).to_be_visible()
    page.go_back()
    expect(rows).to_have_count(10)
    expect(page.locator("#content-q")).to_have_value("keyword 1")
    page.go_back()
    expect(rows).to_have_count(12)

    # History: filtered by status, trigger and day; a run's detail; back to the filtered list.
    page.goto(f"{base}/history")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(3)
    page.locator("#history-trigger").select_option("manual")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{base}/history?trigger=manual")
    expect(history).to_have_count(2)
    page.locator("#history-status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(history).to_have_count(1)
    yesterday = site.yesterday.isoformat()
    page.goto(f"{base}/history?from={yesterday}&to={yesterday}")
    expect(history).to_have_count(1)
    expect(history).to_contain_text("scheduled")
    page.goto(f"{base}/history?status=failed")
    page.get_by_role("link", name=f"Details of {site.runs['failed']}").click()
    expect(page).to_have_url(f"{base}/history/{site.runs['failed']}")
    expect(page.locator("#detail-h")).to_be_focused()
    expect(page.locator("#history-list")).to_be_hidden()
    page.go_back()
    expect(page).to_have_url(f"{base}/history?status=failed")
    expect(history).to_have_count(1)
    # An address opened afresh shows the same view.
    page.goto(f"{base}/history/{site.runs['completed']}")
    expect(page.locator("#run-stages tbody tr")).to_have_count(7)
    assert page.goto(f"{base}/nowhere").status == 404
    assert_no_csp_violations(page, csp_violations)


def test_every_view_passes_axe_and_fits_390_pixels(page, db, console):
    """axe-core finds no serious or critical violation on any view, and at 390 px no view
    scrolls sideways."""
    site = site_with_history(db, console)
    base = f"/sites/{site.tenant.site_id}"
    sign_in(page, site.tenant.token, site.tenant.site_id)
    addresses = {
        **{name: path for name, (path, _) in VIEWS.items()},
        "Run detail": f"/history/{site.runs['completed']}",
        "Articles": "/content?kind=content",
    }
    for name, path in addresses.items():
        page.set_viewport_size({"width": 390, "height": 844})  # shoot() leaves it at 1280
        page.goto(f"{base}{path}")
        expect(page.locator("#console")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert_accessible(page, re.sub(r"[^a-z]+", "-", name.lower()))
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"{name} scrolls sideways: {width} px"
        shoot(page, f"views-{re.sub(r'[^a-z]+', '-', name.lower())}")
