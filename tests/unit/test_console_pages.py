"""The console's page shells: every value from the database or the user is escaped, and the
site page carries what its script needs (the site, the CSRF token)."""

from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

from api_gateway.console import pages

NASTY = '<script>alert("x")</script>'


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
    for page in (pages.sign_in(), pages.not_found("site 9"), pages.no_sites("t")):
        assert page.startswith("<!doctype html>")
        assert 'name="viewport"' in page and '<html lang="en">' in page


def test_the_sign_in_field_is_labelled_and_points_at_the_error():
    page = pages.sign_in("That token is unknown or revoked.")
    assert '<label for="token">' in page and 'id="token"' in page
    assert 'aria-describedby="sign-in-error"' in page and 'role="alert"' in page
