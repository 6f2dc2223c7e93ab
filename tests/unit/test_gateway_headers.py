"""What every answer of the gateway carries (security headers, on pages, files, JSON, errors
and the body limit's own refusal alike, added without holding a stream back), and where its
metrics are served: on the metrics port, and on the API port only when a setting says so."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_gateway import app as gateway_app
from api_gateway import metrics
from api_gateway.app import API_PREFIX, create_app
from api_gateway.console import pages
from api_gateway.security_headers import DOCS_PATHS, SecurityHeaders
from api_gateway.settings import Settings

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
OTHER_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}
STATIC = Path(pages.__file__).parent / "static"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture
def client() -> TestClient:
    """The app without its lifespan: no database, no Kafka; enough for what needs neither."""
    return TestClient(create_app(settings()), follow_redirects=False)


def assert_secured(answer, csp: str = CONSOLE_CSP) -> None:
    assert answer.headers["content-security-policy"] == csp, answer.request.url
    for name, value in OTHER_HEADERS.items():
        assert answer.headers.get_list(name) == [value], (answer.request.url, name)


def test_every_kind_of_answer_carries_the_security_headers(client):
    too_large = {"content-length": str(10**9)}
    answers = [
        (200, client.get("/healthz")),
        (200, client.get("/")),  # the sign-in page
        (200, client.get("/static/console.js")),
        (200, client.get("/static/console.css")),
        (404, client.get("/static/nope.js")),
        (401, client.get(f"{API_PREFIX}/config", params={"site_id": 1})),
        (404, client.get(f"{API_PREFIX}/no-such-call")),
        (200, client.head("/healthz")),
        (413, client.post(f"{API_PREFIX}/keywords/import", content=b"x", headers=too_large)),
    ]
    for status, answer in answers:
        assert answer.status_code == status, answer.request.url
        assert_secured(answer)


def test_a_method_a_path_does_not_take_is_405_naming_every_method_it_does(client):
    """A path with several methods (the webhooks) is a route per method to Starlette, whose own
    405 would name only the first route's."""
    for path, item in create_app().openapi()["paths"].items():
        answer = client.request("OPTIONS", path.replace("{", "").replace("}", ""))
        assert answer.status_code == 405, path
        assert answer.headers["allow"] == ", ".join(sorted(m.upper() for m in item)), path
    assert client.put(f"{API_PREFIX}/webhooks").headers["allow"] == "GET, POST"


def test_the_api_documentation_pages_may_load_their_viewer_and_nothing_else(client):
    app = client.app
    assert {app.docs_url, app.redoc_url} == DOCS_PATHS
    for path in DOCS_PATHS:
        answer = client.get(path)
        assert answer.status_code == 200
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        for source in re.findall(r'(?:src|href)="(https://[^/"]+)', answer.text):
            assert source in csp, f"{path} loads from {source}, which its policy refuses"
        assert answer.headers["x-frame-options"] == "DENY"


HTTP = {"type": "http", "method": "GET", "path": "/api/v1/automation/runs/r/events"}


def _serve(app, sent: list[dict]) -> None:
    """Runs an ASGI app under SecurityHeaders; `sent` gets what reaches the server, in order."""

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(SecurityHeaders(app)(dict(HTTP), receive, send))


def test_a_stream_passes_through_as_it_is_written():
    """Each message goes on as soon as the app sends it: a live stream is never held back."""
    sent: list[dict] = []

    async def stream(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for chunk in (b"event: a\n\n", b"event: b\n\n"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            assert sent[-1]["body"] == chunk, "the middleware held a chunk back"
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    _serve(stream, sent)
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    assert (b"x-frame-options", b"DENY") in sent[0]["headers"]


def test_a_header_the_answer_sets_itself_is_kept():
    async def framed(scope, receive, send) -> None:
        own = [(b"X-Frame-Options", b"SAMEORIGIN")]
        await send({"type": "http.response.start", "status": 200, "headers": own})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict] = []
    _serve(framed, sent)
    names = [name.lower() for name, _ in sent[0]["headers"]]
    assert names.count(b"x-frame-options") == 1
    assert (b"X-Frame-Options", b"SAMEORIGIN") in sent[0]["headers"]
    assert b"content-security-policy" in names


SERVER_RENDERED_BODY = "innerHTML = a.body_html;"


def test_the_console_needs_nothing_its_policy_refuses():
    """No inline script, style element or attribute, or handler attribute in the templates, and
    no script that writes HTML or a style attribute (h() sets `style` through CSSOM). The one
    HTML a script sets is an article's body as the server rendered it safe (body_html, see
    api_gateway/article_html.py and test_console_pages)."""
    templates = Path(pages.__file__).parent / "templates"
    for path in templates.glob("*.html"):
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"{path.name}: inline script"
        assert "<style" not in html and " style=" not in html, f"{path.name}: inline style"
        assert not re.search(r"\son[a-z]+=", html), f"{path.name}: handler attribute"
    for path in STATIC.glob("*.js"):
        script = path.read_text(encoding="utf-8").replace(SERVER_RENDERED_BODY, "")
        for refused in ("innerHTML", "outerHTML", "insertAdjacentHTML"):
            assert refused not in script, f"{path.name}: {refused}"
        assert not re.search(r"\beval\(|\bnew Function\(", script), f"{path.name}: eval"
        assert not re.search(r"setAttribute\(\s*['\"]style", script), path.name
        assert not re.search(r"style:\s*[`'\"]", script), f"{path.name}: a style string for h()"


def test_metrics_are_not_on_the_api_port_unless_a_setting_puts_them_there():
    assert not settings().metrics_on_api_port
    hidden = TestClient(create_app(settings()))
    assert hidden.get("/metrics").status_code == 404
    shown = TestClient(create_app(settings(metrics_on_api_port=True)))
    answer = shown.get("/metrics")
    assert answer.status_code == 200 and "automation_gateway_requests_total" in answer.text
    assert_secured(answer)


def test_the_metrics_port_listens_where_the_api_does(monkeypatch, tmp_path):
    """Inside a container the API listens on every interface, so Prometheus, in another
    container, can reach the metrics port too; locally both stay on loopback."""
    monkeypatch.chdir(tmp_path)  # no .env file
    for name, value in {"GATEWAY_HOST": "0.0.0.0", "METRICS_PORT": "9100"}.items():
        monkeypatch.setenv(name, value)
    started: list[tuple] = []
    monkeypatch.setattr(
        gateway_app, "start_http_server", lambda *a, **k: started.append(("metrics", a, k))
    )
    monkeypatch.setattr(gateway_app.uvicorn, "run", lambda *a, **k: started.append(("api", a, k)))
    with pytest.raises(SystemExit) as ended:
        gateway_app.main([])
    assert ended.value.code == 0
    [(_, args, kwargs), (api, _, api_kwargs)] = started
    assert args == (9100,) and kwargs == {"addr": "0.0.0.0", "registry": metrics.REGISTRY}
    assert api == "api" and api_kwargs["host"] == "0.0.0.0"
