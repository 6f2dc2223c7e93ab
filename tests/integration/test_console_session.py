"""The console's session over HTTP against the gateway process: sign-in sets an HttpOnly,
SameSite cookie with an expiry; the cookie reads the API like the token does, changes need the
CSRF token, other accounts' sites and runs stay "not found", and sign-out ends it."""

from __future__ import annotations

import re

import httpx
import pytest

from api_gateway import accounts
from tests.support.gateway import API, insert_run, make_tenant, seed_content
from tests.support.sse import start_listener

pytestmark = pytest.mark.integration
CSRF = re.compile(r'data-csrf="([^"]+)"')


def browser(gateway) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=30, follow_redirects=False)


def signed_in(gateway, tenant) -> tuple[httpx.Client, str]:
    """A cookie-only client (no Authorization header) and the CSRF token its page carries."""
    client = browser(gateway)
    answer = client.post("/sign-in", data={"token": tenant.token})
    assert answer.status_code == 303, answer.text
    page = client.get(f"/sites/{tenant.site_id}")
    assert page.status_code == 200
    return client, CSRF.search(page.text).group(1)


def test_sign_in_sets_a_protected_cookie_and_opens_the_first_site(gateway, tenant):
    client = browser(gateway)
    assert 'name="token"' in client.get("/").text
    answer = client.post("/sign-in", data={"token": tenant.token})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "expires=" in cookie
    assert tenant.token.lower() not in cookie
    home = client.get("/")
    assert home.status_code == 303 and home.headers["location"] == f"/sites/{tenant.site_id}"
    page = client.get(f"/sites/{tenant.site_id}")
    assert page.status_code == 200 and "Current processing" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_a_bad_token_or_a_foreign_origin_does_not_sign_in(gateway, tenant):
    client = browser(gateway)
    bad = client.post("/sign-in", data={"token": "cat_nope"})
    assert bad.status_code == 401 and "unknown or revoked" in bad.text
    assert "set-cookie" not in bad.headers
    assert client.post("/sign-in", data={}).status_code == 401
    foreign = client.post(
        "/sign-in", data={"token": tenant.token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    assert client.get(f"/sites/{tenant.site_id}").status_code == 303


def test_the_cookie_reads_the_api_and_changes_need_the_csrf_token(gateway, tenant):
    client, csrf = signed_in(gateway, tenant)
    params = {"site_id": tenant.site_id}
    assert client.get(f"{API}/config", params=params).status_code == 200
    change = {"stage_concurrency": 2}
    refused = client.put(f"{API}/update_config", params=params, json=change)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf"
    wrong = client.put(
        f"{API}/update_config", params=params, json=change, headers={"X-CSRF-Token": "x"}
    )
    assert wrong.status_code == 403
    done = client.put(
        f"{API}/update_config", params=params, json=change, headers={"X-CSRF-Token": csrf}
    )
    assert done.status_code == 200 and done.json()["stage_concurrency"] == 2


def test_images_load_with_the_cookie(gateway, tenant, db):
    ids = seed_content(db, tenant, gateway.media_dir)
    client, _ = signed_in(gateway, tenant)
    media = client.get(f"{API}/media/{ids['image']}")
    assert media.status_code == 200 and media.content.startswith(b"\x89PNG")
    assert browser(gateway).get(f"{API}/media/{ids['image']}").status_code == 401


def test_another_accounts_site_and_run_are_not_found(gateway, tenant, db):
    other = make_tenant(db, gateway)
    run_id = insert_run(db, other, status="running")
    client, csrf = signed_in(gateway, tenant)
    page = client.get(f"/sites/{other.site_id}")
    assert page.status_code == 404 and "no site" in page.text.lower()
    assert page.text == client.get("/sites/999999999").text.replace("999999999", str(other.site_id))
    assert client.get("/sites/abc").status_code == 404
    assert client.get(f"{API}/config", params={"site_id": other.site_id}).status_code == 404
    assert client.get(f"{API}/run", params={"run_id": run_id}).status_code == 404
    assert client.get(f"{API}/runs/{run_id}/events").status_code == 404
    paused = client.post(f"{API}/pause", params={"run_id": run_id}, headers={"X-CSRF-Token": csrf})
    assert paused.status_code == 404


def test_sign_out_needs_the_csrf_token_and_ends_the_session(gateway, tenant):
    client, csrf = signed_in(gateway, tenant)
    assert client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 403
    assert client.get(f"/sites/{tenant.site_id}").status_code == 200
    out = client.post("/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303 and 'console_session=""' in out.headers["set-cookie"]
    assert client.get(f"/sites/{tenant.site_id}").status_code == 303
    assert client.get(f"{API}/config", params={"site_id": tenant.site_id}).status_code == 401


def test_signing_out_ends_the_session_everywhere_and_its_open_streams(
    gateway, tenant, orchestrator
):
    """The cookie is stateless, so sign-out must be remembered: a copy of the cookie (another
    tab, or a stolen one) stops working, and streams opened with it end."""
    client, csrf = signed_in(gateway, tenant)
    copy = browser(gateway)
    copy.cookies = httpx.Cookies(client.cookies)
    run_id = tenant.import_and_run([{"keyword": "a"}])
    listener, events = start_listener(copy, run_id)
    assert client.post("/sign-out", data={"csrf_token": csrf}).status_code == 303
    listener.join(10)
    assert not listener.is_alive(), "a stream of a signed-out session ends"
    assert events[-1]["event"] == "stream.ended"
    assert copy.get(f"{API}/config", params={"site_id": tenant.site_id}).status_code == 401


def test_revoking_the_token_ends_its_sessions(gateway, tenant, db):
    client, _ = signed_in(gateway, tenant)
    with db.begin() as conn:
        assert accounts.revoke_tokens(conn, tenant.user_id, "test") == 1
    answer = client.get(f"{API}/config", params={"site_id": tenant.site_id})
    assert answer.status_code == 401 and "sign in again" in answer.json()["detail"]
    assert client.get(f"/sites/{tenant.site_id}").status_code == 303


def test_every_kind_of_answer_carries_the_security_headers(gateway, tenant, db):
    """Pages, files, JSON, errors and images from the gateway process; and no /metrics on the
    API port (the metrics port serves them: the gateway fixture waits on it)."""
    ids = seed_content(db, tenant, gateway.media_dir)
    client, _ = signed_in(gateway, tenant)
    answers = [
        (200, browser(gateway).get("/")),  # the sign-in page
        (200, client.get(f"/sites/{tenant.site_id}")),
        (404, client.get("/sites/999999999")),
        (200, client.get("/static/console.js")),
        (200, client.get(f"{API}/config", params={"site_id": tenant.site_id})),
        (200, tenant.get(f"/content/{ids['content']}")),
        (200, client.get(f"{API}/media/{ids['image']}")),
        (401, browser(gateway).get(f"{API}/config", params={"site_id": tenant.site_id})),
        (404, tenant.get("/run", run_id="run_20260101_000000_manual_abcdef")),
        (200, client.get("/healthz")),
        (404, client.get("/metrics")),
    ]
    for status, answer in answers:
        assert answer.status_code == status, answer.request.url
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"


def test_the_review_view_opens_for_the_accounts_own_sites_only(gateway, tenant, db):
    other = make_tenant(db, gateway)
    queue = f"/sites/{tenant.site_id}/review"
    assert browser(gateway).get(queue).status_code == 303  # signed out: to the sign-in
    client, csrf = signed_in(gateway, tenant)
    for path in (queue, f"{queue}/12"):
        page = client.get(path)
        assert (
            page.status_code == 200
            and '<script type="module" src="/static/review.js">' in page.text
        )
        assert CSRF.search(page.text).group(1) == csrf
    assert client.get(f"/sites/{other.site_id}/review").status_code == 404
    assert client.get(f"{queue}/abc").status_code == 404
    assert client.get(f"{queue}/0").status_code == 404


def test_an_article_comes_with_its_body_rendered_and_its_images_placed(gateway, tenant, db):
    ids = seed_content(db, tenant, gateway.media_dir)
    client, _ = signed_in(gateway, tenant)
    article = client.get(f"{API}/content/{ids['content']}").json()
    featured = next(i for i in article["images"] if i["id"] == ids["image"])
    assert article["body_html"].startswith(
        f'<figure class="article-image" data-image="{ids["image"]}"><img src="{featured["url"]}"'
    )
    assert "<h2>What is SEO</h2>\n<p>Text.</p>" in article["body_html"]
    assert "Image 2 not made yet: q" in article["body_html"]  # the pending one
