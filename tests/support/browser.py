"""Chromium for the console's browser tests: Debian's package, driven by Playwright (no browser
download: the executable path is set), a page that collects what the Content-Security-Policy
refused, signing in, and a folder for the screenshots the tests save."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

REPO = Path(__file__).resolve().parents[2]
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """CHROMIUM, else Debian's chromium on PATH (deploy/local/bootstrap.sh installs it)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("chromium is missing: deploy/local/bootstrap.sh installs it (apt)")
    return path


def artifacts_dir() -> Path:
    """Where screenshots go: ARTIFACTS_DIR, else tmp/artifacts in the repo (not committed)."""
    path = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "tmp" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# Logs each refusal of the page's Content-Security-Policy, so the test collects them from the
# console across navigations (Chromium logs its own message for each too).
CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation on ${location.pathname}: ${e.effectiveDirective} refused `
    + `${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`);
});
"""
CSP_CANARY = "https://csp-canary.invalid/seen.png"


def console_page(
    browser: Browser, url: str, csp_violations: list[str], *init_scripts: str
) -> Iterator[Page]:
    """A page of a new context on the console at `url` (1280 × 900), whose refusals of the
    Content-Security-Policy land in `csp_violations`; `init_scripts` run before each page's own."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    for script in (*init_scripts, CSP_WATCH):
        context.add_init_script(script)

    def on_console(message) -> None:
        text = message.text
        if text.startswith("CSP violation") or "Content Security Policy" in text:
            csp_violations.append(text)

    context.on("console", on_console)
    page = context.new_page()
    page.on("pageerror", lambda error: print(f"page error on {page.url}: {error}"))  # in -s output
    page.set_default_timeout(30_000)
    yield page
    context.close()


def assert_no_csp_violations(page: Page, violations: list[str]) -> None:
    """Nothing broke the policy. An image from elsewhere, which it refuses, must be reported
    first: so the watch works, and whatever came before it has been collected."""
    with page.expect_console_message(
        lambda m: m.text.startswith("CSP violation") and CSP_CANARY in m.text
    ):
        page.evaluate("url => { new Image().src = url; }", CSP_CANARY)
    assert [v for v in violations if CSP_CANARY not in v] == []


def shoot(page: Page, name: str) -> None:
    """Full-page screenshots at desktop and phone width."""
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=artifacts_dir() / f"{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page: Page, token: str, site_id: int) -> None:
    page.goto("/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"/sites/{site_id}")
    expect(page.locator("#live-status")).not_to_have_text("Connecting…")


# axe-core from npm (tests/support/axe/README.md says which and how to update it).
AXE = Path(__file__).parent / "axe" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
BLOCKING = ("serious", "critical")


def assert_accessible(page: Page, name: str) -> None:
    """axe-core on the page as it shows now: no serious or critical violation. The full result
    is kept beside the screenshots (axe-NAME.json). The script is evaluated through the
    browser's debugging protocol, which the page's Content-Security-Policy does not govern."""
    source = AXE.read_bytes()
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256, "tests/support/axe changed"
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source.decode("utf-8"))
    result = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    (artifacts_dir() / f"axe-{name}.json").write_text(json.dumps(result["violations"], indent=1))
    blocking = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]
    assert blocking == [], f"axe on {name}: " + "; ".join(blocking)
