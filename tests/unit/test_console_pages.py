"""The console's page shells: every value from the database or the user is escaped, and the
site page carries what its script needs (the site, the CSRF token, the places its controls
answer in); the page's requests all carry the CSRF token."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

from api_gateway.console import pages
from api_gateway.webhooks.payloads import WEBHOOK_TYPES

NASTY = '<script>alert("x")</script>'
STATIC = Path(pages.__file__).parent / "static"


def test_site_names_and_errors_are_escaped():
    mine = SimpleNamespace(id=3, name=NASTY)
    other = SimpleNamespace(id=4, name="Second & Co")
    page = pages.site([mine, other], mine, csrf='t"k')
    assert NASTY not in page and html.escape(NASTY) in page
    assert "Second &amp; Co" in page
    assert 'data-csrf="t&quot;k"' in page
    boot = re.search(r'data-boot="([^"]+)"', page).group(1)
    assert json.loads(html.unescape(boot)) == {"siteId": 3, "siteName": NASTY}
    assert '<option value="3" selected>' in page and '<option value="4">' in page
    assert NASTY not in pages.sign_in(NASTY)
    assert NASTY not in pages.not_found(NASTY)


def test_every_page_is_a_whole_document_with_a_viewport():
    webhooks = pages.webhooks([SimpleNamespace(id=3, name="Mine")], "t")
    for page in (pages.sign_in(), pages.not_found("site 9"), pages.no_sites("t"), webhooks):
        assert page.startswith("<!doctype html>")
        assert 'name="viewport"' in page and '<html lang="en">' in page


def test_the_sign_in_field_is_labelled_and_points_at_the_error():
    page = pages.sign_in("That token is unknown or revoked.")
    assert '<label for="token">' in page and 'id="token"' in page
    assert 'aria-describedby="sign-in-error"' in page and 'role="alert"' in page


def test_the_stages_section_has_the_retry_all_control_and_a_line_for_its_answers():
    mine = SimpleNamespace(id=3, name="Mine")
    page = pages.site([mine], mine, csrf="t")
    stages = page[page.index('aria-labelledby="stages-h"') : page.index('id="stages"')]
    assert '<h2 id="stages-h" tabindex="-1">' in stages  # the focus lands here after a retry
    assert re.search(r'<button type="button" id="retry-all"[^>]* hidden>', stages)
    assert '<p id="stages-message" class="message" aria-live="polite">' in stages


def test_every_request_of_the_page_goes_through_api_js_which_sends_the_csrf_token():
    """The CSRF header is added in one place; a script that called fetch itself would skip it."""
    scripts = {path.name: path.read_text(encoding="utf-8") for path in STATIC.glob("*.js")}
    assert [name for name, text in scripts.items() if "fetch(" in text] == ["api.js"]
    assert not any("XMLHttpRequest" in text for text in scripts.values())
    assert 'if (method !== "GET") headers["X-CSRF-Token"] = csrf;' in scripts["api.js"]
    assert 'post("/retry_failed", params)' in scripts["console.js"]


def test_the_webhooks_page_offers_every_type_and_site_labelled_and_escaped():
    mine, second = SimpleNamespace(id=3, name=NASTY), SimpleNamespace(id=4, name="Second & Co")
    page = pages.webhooks([mine, second], csrf='t"k')
    assert NASTY not in page and html.escape(NASTY) in page and "Second &amp; Co" in page
    assert 'data-csrf="t&quot;k"' in page and 'value="t&quot;k"' in page  # API calls, sign-out
    boot = re.search(r'data-boot="([^"]+)"', page).group(1)
    assert json.loads(html.unescape(boot)) == {
        "sites": [{"id": 3, "name": NASTY}, {"id": 4, "name": "Second & Co"}]
    }
    for kind in WEBHOOK_TYPES:
        assert f'id="hook-type-{kind}" name="event_types" value="{kind}"' in page
        assert f'<label for="hook-type-{kind}"><code>{kind}</code>' in page
    for site in (3, 4):
        assert f'id="hook-site-{site}" name="site_ids" value="{site}"' in page
        assert f'<label for="hook-site-{site}">' in page
    for field in ("url", "description"):
        assert f'<label for="hook-{field}">' in page and f'id="hook-{field}-error"' in page
    assert '<div id="webhook-banner" class="banner" role="alert" hidden></div>' in page
    assert '<script type="module" src="/static/webhooks.js"></script>' in page


def test_the_site_page_links_the_webhooks_and_has_their_banner():
    mine = SimpleNamespace(id=3, name="Mine")
    page = pages.site([mine], mine, csrf="t")
    assert '<a class="nav" href="/webhooks">Webhooks</a>' in page
    assert page.index('id="webhook-banner"') < page.index('<main id="console"')
    console = (STATIC / "console.js").read_text(encoding="utf-8")
    assert "showDisabledWebhooks();" in console


def test_the_review_view_is_escaped_and_has_what_its_script_and_keys_need():
    mine = SimpleNamespace(id=3, name=NASTY)
    page = pages.review([mine], mine, csrf='t"k')
    assert page.startswith("<!doctype html>") and NASTY not in page
    assert html.escape(NASTY) in page and 'data-csrf="t&quot;k"' in page
    boot = re.search(r'data-boot="([^"]+)"', page).group(1)
    assert json.loads(html.unescape(boot)) == {"siteId": 3, "siteName": NASTY}
    assert '<a class="nav" href="/sites/3">' in page  # back to the site
    assert '<a id="to-queue" href="/sites/3/review">' in page  # a real link, also without script
    for place in ("queue", "article-body", "article-h", "edit-form", "reject-dialog"):
        assert f'id="{place}"' in page
    # Every field is labelled; the reason is required before a rejection is sent.
    for field in ("review-all", "edit-title", "edit-body", "reject-reason"):
        assert f'<label for="{field}">' in page
    assert re.search(r'<textarea id="reject-reason"[^>]* required', page)
    assert '<script type="module" src="/static/review.js"></script>' in page


def test_the_site_page_links_its_review_view():
    mine = SimpleNamespace(id=3, name="Mine")
    page = pages.site([mine], mine, csrf="t")
    assert '<a id="open-review" href="/sites/3/review">' in page
    assert 'id="review-summary"' in page
