"""HTML of the console's pages: small templates filled with escaped values, nothing else.

The pages are shells; the data in them comes from the JSON API, fetched by console.js.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from html import escape
from pathlib import Path
from string import Template

from sqlalchemy.engine import Row

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _page(title: str, body: str) -> str:
    return _template("layout.html").substitute(title=escape(title), body=body)


def sign_in(error: str | None = None) -> str:
    message, described = "", ""
    if error:
        message = f'<p class="error" role="alert" id="sign-in-error">{escape(error)}</p>'
        described = ' aria-describedby="sign-in-error"'
    body = _template("sign_in.html").substitute(error=message, described=described)
    return _page("Sign in", body)


def not_found(what: str) -> str:
    return _page("Not found", _template("not_found.html").substitute(what=escape(what)))


def no_sites(csrf: str) -> str:
    return _page("No sites", _template("no_sites.html").substitute(csrf=escape(csrf)))


def site(sites: Sequence[Row], current: Row, csrf: str) -> str:
    options = "".join(
        f'<option value="{s.id}"{" selected" if s.id == current.id else ""}>'
        f"{escape(s.name)}</option>"
        for s in sites
    )
    boot = {"siteId": current.id, "siteName": current.name}
    body = _template("site.html").substitute(
        options=options,
        csrf=escape(csrf),
        site_name=escape(current.name),
        boot=escape(json.dumps(boot)),
    )
    return _page(f"{current.name} · Automation", body)
