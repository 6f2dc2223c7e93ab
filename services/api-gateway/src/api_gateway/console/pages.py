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


def _fragment(name: str, **values: object) -> str:
    """A template that is part of another, without its final newline."""
    return _template(name).substitute(values).rstrip("\n")


def _page(title: str, body: str) -> str:
    return _template("layout.html").substitute(title=escape(title), body=body)


def _link(href: str, text: str) -> str:
    return f'  <a class="nav" href="{escape(href)}">{escape(text)}</a>'


def _console_page(
    main: str, script: str, links: Sequence[str], csrf: str, boot: dict, nav: str
) -> str:
    """A page of the console: the header with its links and the sign-out, the webhook banner,
    the views' links, then the page's own `main`, run by its `script`."""
    return _template("console.html").substitute(
        links="\n".join(links),
        sign_out=_fragment("sign_out.html", csrf=escape(csrf)),
        nav=nav,
        boot=escape(json.dumps(boot)),
        csrf=escape(csrf),
        main=main,
        script=script,
    )


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
    body = _template("no_sites.html").substitute(
        sign_out=_fragment("sign_out.html", csrf=escape(csrf))
    )
    return _page("No sites", body)


def site(sites: Sequence[Row], current: Row, csrf: str, view: str = "") -> str:
    options = "".join(
        f'<option value="{s.id}"{" selected" if s.id == current.id else ""}>'
        f"{escape(s.name)}</option>"
        for s in sites
    )
    main = _template("site.html").substitute(site_id=current.id, site_name=escape(current.name))
    links = [_link("/webhooks", "Webhooks"), _fragment("site_picker.html", options=options)]
    boot = {"siteId": current.id, "siteName": current.name}
    body = _console_page(main, "console.js", links, csrf, boot, nav(current.id, view))
    name = dict(VIEWS).get(view, "Run")
    return _page(f"{name} · {current.name} · Automation", body)


def review(sites: Sequence[Row], current: Row, csrf: str) -> str:
    """A site's review view: the queue, or one article (the script reads which from the URL).
    The article's body comes from the API already rendered (`body_html`)."""
    main = _template("review.html").substitute(site_id=current.id, site_name=escape(current.name))
    links = [_link(f"/sites/{current.id}", current.name), _link("/webhooks", "Webhooks")]
    boot = {"siteId": current.id, "siteName": current.name}
    body = _console_page(main, "review.js", links, csrf, boot, nav(current.id, "/review"))
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
    main = _template("webhooks.html").substitute(types=types, sites=choices)
    links = [_link("/", "Sites")]
    body = _console_page(main, "webhooks.js", links, csrf, boot, nav(site_id, "/webhooks"))
    return _page("Webhooks · Automation", body)
