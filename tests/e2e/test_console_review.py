"""The review view in a real Chromium against the gateway on the real PostgreSQL, with articles
written as stages 4 to 6 leave them: a reviewer reads an article (its body rendered by the
server with its images in place, the keywords, word count, the run that made it), edits it, is
refused an edit made on a version changed meanwhile, approves it; a hostile body shows as text
and runs nothing; three articles are decided with the keyboard alone; back and forward move
between the queue and an article; at 390 px nothing scrolls sideways. None of it breaks the
page's Content-Security-Policy. Screenshots land in tmp/artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from api_gateway.run_commands import new_run_id
from contracts.db import tables as t
from stage_workers.ai.png import draw_from_prompt
from tests.support.browser import assert_accessible, assert_no_csp_violations, shoot, sign_in
from tests.support.content import add_article
from tests.support.gateway import API, make_tenant

pytestmark = [pytest.mark.integration, pytest.mark.browser]
HOSTILE = (
    "# A hostile article\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
    "Click [x](javascript:alert(1)) now.\n"
)
BODY = (
    "# {title}\n\nWhy it matters.\n\n## First part\n\nSome words here.\n\n## Second part\n\nMore."
)


@pytest.fixture
def alarms(page: Page) -> list[str]:
    """Dialogs the page opened (an alert would be a script from an article) and errors it
    threw or logged, other than refusals of the policy (collected apart) and the 409 a stale
    edit answers by design."""
    seen: list[str] = []

    def on_dialog(dialog) -> None:
        seen.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: seen.append(f"error: {error}"))

    def on_console(message) -> None:
        where = (message.location or {}).get("url", "")
        expected = "CSP" in message.text or "409" in message.text or where.endswith("favicon.ico")
        if message.type == "error" and not expected:
            seen.append(f"console: {message.text} ({where})")

    page.on("console", on_console)
    return seen


def article(db: sa.Engine, console, site_id: int, title: str, body: str | None = None) -> int:
    """An article in review, made by a run, with a featured and one in-article image as files
    in the gateway's MEDIA_DIR."""
    made = add_article(
        db, site_id, title=title, body=body or BODY.format(title=title), run_id=new_run_id()
    )
    with db.begin() as conn:
        for image_id in made.image_ids:
            path = Path(str(site_id), str(made.content_id), f"{image_id}.png")
            (console.media_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (console.media_dir / path).write_bytes(draw_from_prompt(f"picture {image_id}"))
            conn.execute(
                sa.update(t.images)
                .where(t.images.c.id == image_id)
                .values(url=None, file_path=str(path))
            )
    return made.content_id


def status_of(db: sa.Engine, content_id: int) -> tuple[str, str | None]:
    with db.connect() as conn:
        row = conn.execute(
            sa.select(t.content.c.status, t.content.c.reject_reason).where(
                t.content.c.id == content_id
            )
        ).one()
    return row.status, row.reject_reason


def open_review(page: Page, tenant) -> None:
    sign_in(page, tenant.token, tenant.site_id)
    expect(page.locator("#review-summary")).not_to_have_text("Counting…")
    page.get_by_role("link", name="Open the review queue").click()
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review")


def no_sideways_scroll(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_reviewer_reads_edits_and_approves_an_article(page, db, console, csp_violations, alarms):
    tenant = make_tenant(db, console)
    first = article(db, console, tenant.site_id, "What is SEO")
    second = article(db, console, tenant.site_id, "Keyword research")
    open_review(page, tenant)
    expect(page.locator(".review-item")).to_have_count(2)
    line = page.locator(f'.review-item[data-content="{first}"]')
    expect(line.locator(".excerpt")).to_have_text(
        "What is SEO Why it matters. First part Some words here. Second part More."
    )
    expect(line.locator(".chips .tag")).to_have_count(2)
    expect(line).to_contain_text("words")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.review-item img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length === 4"
    )
    no_sideways_scroll(page)
    shoot(page, "20-review-queue")
    assert_accessible(page, "review-queue")

    line.get_by_role("link", name="What is SEO").click()
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review/{first}")
    expect(page.locator("#article-h")).to_have_text("What is SEO")
    expect(page.locator("#article-h")).to_be_focused()
    body = page.locator("#article-body")
    expect(body.locator("h3")).to_have_text(["First part", "Second part"])
    expect(body.locator("figure img")).to_have_count(2)
    # The featured image first, the in-article one after the first section.
    expect(body.locator(":scope > *").first).to_have_class("article-image")
    expect(body.locator("h3 + p + figure")).to_have_count(1)
    meta = page.locator("#article-meta")
    expect(meta).to_contain_text("version 1")
    expect(meta.locator("code")).to_have_text(
        page.request.get(f"{API}/content/{first}").json()["run_id"]
    )
    expect(page.locator("#article-keywords .tag")).to_have_count(2)
    expect(page.locator("#position")).to_have_text("1 of 2")
    no_sideways_scroll(page)
    shoot(page, "21-review-article")
    assert_accessible(page, "review-article")

    page.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    page.get_by_label("Title", exact=True).fill("What is SEO, really")
    page.get_by_label("Body (Markdown)").fill("# What is SEO\n\nSearch engines **read** pages.")
    # Another reviewer saves first: this edit was made on version 1 and is refused.
    other = tenant.client.patch(f"{API}/content/{first}", json={"title": "Theirs", "version": 1})
    assert other.status_code == 200, other.text
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#edit-message")).to_contain_text("changed since you opened it")
    assert page.request.get(f"{API}/content/{first}").json()["title"] == "Theirs"
    page.get_by_role("button", name="Reload the article").click()
    expect(page.locator("#article-h")).to_have_text("Theirs")
    expect(page.locator("#article-meta")).to_contain_text("version 2")
    expect(page.locator("#article-meta")).to_contain_text(f"edited by user {tenant.user_id}")

    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Title", exact=True).fill("What is SEO, really")
    page.get_by_label("Body (Markdown)").fill("# What is SEO\n\nSearch engines **read** pages.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#article-h")).to_have_text("What is SEO, really")
    expect(page.locator("#article-body strong")).to_have_text("read")
    expect(page.locator("#article-meta")).to_contain_text("version 3")
    page.locator("#original summary").click()
    expect(page.locator("#original-title")).to_have_text("Title: What is SEO")
    expect(page.locator("#original-body")).to_contain_text("## First part")
    shoot(page, "22-review-edited")

    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#review-message")).to_have_text("Approved “What is SEO, really”.")
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review/{second}")
    expect(page.locator("#article-h")).to_have_text("Keyword research")
    saved = page.request.get(f"{API}/content/{first}").json()
    assert saved["status"] == "approved" and saved["title"] == "What is SEO, really"
    assert saved["original_title"] == "What is SEO" and saved["edited_by"] == tenant.user_id

    # Back and forward between the queue and an article.
    page.get_by_role("link", name="Back to the queue").click()
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review")
    expect(page.locator(".review-item")).to_have_count(1)
    page.go_back()
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review/{second}")
    expect(page.locator("#article-h")).to_have_text("Keyword research")
    page.go_forward()
    expect(page.locator("#queue-view")).to_be_visible()
    expect(page.locator("#article-view")).to_be_hidden()
    assert alarms == []
    assert_no_csp_violations(page, csp_violations)


def test_a_hostile_body_shows_as_text_and_runs_nothing(page, db, console, csp_violations, alarms):
    tenant = make_tenant(db, console)
    hostile = article(db, console, tenant.site_id, "Hostile", HOSTILE)
    page.add_init_script("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };")
    open_review(page, tenant)
    page.goto(f"/sites/{tenant.site_id}/review/{hostile}")
    body = page.locator("#article-body")
    expect(body).to_contain_text("<script>alert(1)</script>")
    expect(body).to_contain_text("<img src=x onerror=alert(1)>")
    expect(body).to_contain_text("[x](javascript:alert(1))")
    assert body.locator("script, a, iframe, object, embed").count() == 0
    assert body.locator("img:not(figure img)").count() == 0  # only the article's own images
    assert page.locator('[href^="javascript:" i], [src="x"]').count() == 0
    assert page.evaluate("() => window.__alerts") == 0
    shoot(page, "23-review-hostile")
    assert alarms == []
    assert_no_csp_violations(page, csp_violations)


def test_three_articles_reviewed_with_the_keyboard_alone(page, db, console, csp_violations, alarms):
    tenant = make_tenant(db, console)
    ids = [article(db, console, tenant.site_id, f"Article {n}") for n in (1, 2, 3, 4)]
    page.goto("/")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(tenant.token)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"/sites/{tenant.site_id}")
    expect(page.locator("#review-summary")).to_have_text("4 articles wait for review.")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "open-review":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review")
    expect(page.locator(".review-item")).to_have_count(4)

    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.get_by_role("link", name="Article 2")).to_be_focused()
    page.keyboard.press("k")
    expect(page.get_by_role("link", name="Article 1")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review/{ids[0]}")
    expect(page.locator("#article-h")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator("#article-h")).to_have_text("Article 2")
    page.keyboard.press("k")
    expect(page.locator("#article-h")).to_have_text("Article 1")

    page.keyboard.press("a")  # approve, and on to the next
    expect(page.locator("#article-h")).to_have_text("Article 2")
    expect(page.locator("#article-h")).to_be_focused()

    page.keyboard.press("r")  # reject: the reason first
    expect(page.get_by_label("Reason (kept with the article)")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # no reason yet: refused in the page
    expect(page.locator("#reject-reason-error")).to_contain_text("Say why")
    expect(page.get_by_label("Reason (kept with the article)")).to_be_focused()
    page.keyboard.type("Repeats article 1")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#article-h")).to_have_text("Article 3")

    page.keyboard.press("e")  # edit, then Escape closes without saving
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    page.keyboard.type(" (typed j and k)")
    page.keyboard.press("Escape")
    expect(page.locator("#edit-form")).to_be_hidden()
    expect(page.get_by_role("button", name="Edit")).to_be_focused()
    expect(page.locator("#article-h")).to_have_text("Article 3")
    page.keyboard.press("a")
    expect(page.locator("#article-h")).to_have_text("Article 4")

    page.keyboard.press("Escape")  # back to the queue, where one is left
    expect(page).to_have_url(f"/sites/{tenant.site_id}/review")
    expect(page.locator(".review-item")).to_have_count(1)
    expect(page.get_by_role("link", name="Article 4")).to_be_focused()
    no_sideways_scroll(page)
    shoot(page, "24-review-keyboard")

    assert [status_of(db, i) for i in ids] == [
        ("approved", None),
        ("rejected", "Repeats article 1"),
        ("approved", None),
        ("review", None),
    ]
    assert alarms == []
    assert_no_csp_violations(page, csp_violations)
