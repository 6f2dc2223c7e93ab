"""Fixtures the end-to-end modules share: the browser the console tests drive, the console (the
gateway alone, which a module may override with more services) and a page on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.browser import LAUNCH_ARGS, chromium_path, console_page
from tests.support.gateway import Console, start_console


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, one per test module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), args=LAUNCH_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def console(services) -> Console:
    """The gateway alone: enough for views that read what the database holds."""
    return start_console(services)


@pytest.fixture
def csp_violations() -> list[str]:
    """What the Content-Security-Policy refused on any page the test's browser showed."""
    return []


@pytest.fixture
def page(browser, console, csp_violations) -> Iterator[Page]:
    """A page of a new browser context on the console."""
    yield from console_page(browser, console.url, csp_violations)
