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

from api_gateway.webhooks.payloads import WEBHOOK_TYPES

TEMPLATES = Path(__file__).parent / "templates"
# What each webhook type means, beside its name on the webhooks page.
TYPE_LABELS = {
    "run.completed": "a run completed",
    "run.failed": "a run failed",
    "run.paused": "a run paused, with the reason",
    "run.cancelled": "a run was cancelled",
    "review.ready": "articles wait for review",
    "credits.low": "credits will not pay for the next scheduled run",
    "endpoint.disabled": "another endpoint of the account was disabled",
}


# The views of a site, each at its own address: (path after /sites/{id}, name). The run view
# and the ones after it up to Usage are one page (site.html, console.js); Review and Webhooks
# are pages of their own.
VIEWS = (
    ("", "Run"),
    ("/review", "Review"),
    ("/content", "Content"),
    ("/history", "History"),
    ("/config", "Configuration"),
    ("/usage", "Usage"),
    ("/webhooks", "Webhooks"),
)


def nav(site_id: int | None, current: str) -> str:
    """The views' links, the current one marked; without a site (the account's webhooks page
    reached from elsewhere) only Webhooks."""
    if site_id is None:
        return ""
    mark = ' aria-current="page"'
    links = "".join(
        f'<li><a href="/sites/{site_id}{path}" data-view="{path.strip("/") or "run"}"'
        f"{mark if path == current else ''}>{name}</a></li>"
        for path, name in VIEWS
    )
    return f'<nav class="views" aria-label="Views of this site"><ul>{links}</ul></nav>'


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


def site(sites: Sequence[Row], current: Row, csrf: str, view: str = "") -> str:
    options = "".join(
        f'<option value="{s.id}"{" selected" if s.id == current.id else ""}>'
        f"{escape(s.name)}</option>"
        for s in sites
    )
    boot = {"siteId": current.id, "siteName": current.name}
    body = _template("site.html").substitute(
        site_id=current.id,
        nav=nav(current.id, view),
        options=options,
        csrf=escape(csrf),
        site_name=escape(current.name),
        boot=escape(json.dumps(boot)),
    )
    name = dict(VIEWS).get(view, "Run")
    return _page(f"{name} · {current.name} · Automation", body)


def review(sites: Sequence[Row], current: Row, csrf: str) -> str:
    """A site's review view: the queue, or one article (the script reads which from the URL).
    The article's body comes from the API already rendered (`body_html`)."""
    boot = {"siteId": current.id, "siteName": current.name}
    body = _template("review.html").substitute(
        site_id=current.id,
        nav=nav(current.id, "/review"),
        csrf=escape(csrf),
        site_name=escape(current.name),
        boot=escape(json.dumps(boot)),
    )
    return _page(f"Review · {current.name} · Automation", body)


def _check(name: str, value: object, label: str, prefix: str) -> str:
    box = f"{prefix}-{value}"
    return (
        f'<div class="check"><input type="checkbox" id="{escape(box)}" name="{name}" '
        f'value="{escape(str(value))}"><label for="{escape(box)}">{label}</label></div>'
    )


def webhooks(sites: Sequence[Row], csrf: str, site_id: int | None = None) -> str:
    """The account's webhooks: the types and sites a new endpoint may choose are in the form;
    the rest comes from the API."""
    types = "".join(
        _check("event_types", t, f"<code>{t}</code> {escape(TYPE_LABELS[t])}", "hook-type")
        for t in WEBHOOK_TYPES
    )
    choices = "".join(_check("site_ids", s.id, escape(s.name), "hook-site") for s in sites)
    boot = {"sites": [{"id": s.id, "name": s.name} for s in sites]}
    body = _template("webhooks.html").substitute(
        csrf=escape(csrf),
        types=types,
        sites=choices,
        boot=escape(json.dumps(boot)),
        nav=nav(site_id, "/webhooks"),
    )
    return _page("Webhooks · Automation", body)
