"""One order and one shape for every route of the OpenAPI document, swept over the gateway
process: the caller is known before the body is read (401 whatever the body), then the body's
type (415), its size however it is sent (413), and whether it can be read at all (400 naming
`body` with a `code`)."""

from __future__ import annotations

import httpx
import pytest

from api_gateway.app import create_app
from api_gateway.run_commands import new_run_id
from tests.support.gateway import Tenant

OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in create_app().openapi()["paths"].items()
    for method, operation in item.items()
]
WITH_BODY = [op for op in OPERATIONS if "requestBody" in op[2]]
# Every route takes an API token but one, which the provider signs instead: its webhook
# (tests/integration/test_provider_webhooks.py).
SIGNED = {"POST /api/v1/automation/provider_webhooks/openai"}
WITH_TOKEN = [op for op in OPERATIONS if f"{op[0]} {op[1]}" not in SIGNED]
JSON = {"content-type": "application/json"}
UNREADABLE = {
    "broken JSON": b'{"is_enabled": tru',
    "invalid UTF-8": b'[{"keyword": "caf\xe9"}]',
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    "a number past any integer": b'[{"keyword": "k", "volume": ' + b"9" * 5000 + b"}]",
    "a lone surrogate": b'[{"keyword": "\\ud800"}]',
}


def _name(operation: tuple) -> str:
    return f"{operation[0]} {operation[1]}"


def _url(tenant: Tenant, path: str, operation: dict) -> tuple[str, dict]:
    """The path with its ids filled in, and the query parameters it requires."""
    url = path
    params: dict[str, object] = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        value = {"site_id": tenant.site_id, "run_id": new_run_id()}.get(name, 1)
        if parameter["in"] == "path":
            url = url.replace("{" + name + "}", str(value))
        elif parameter.get("required"):
            params[name] = value
    return url, params


def _refusal(response: httpx.Response, status: int, field: str | None, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["detail"] and body.get("field") == field and body["code"] == code, body


def test_every_route_with_a_body_is_in_the_sweep():
    assert {_name(op) for op in WITH_BODY} >= {
        "PUT /api/v1/automation/update_config",
        "POST /api/v1/automation/keywords/import",
        "POST /api/v1/automation/webhooks",
        "PATCH /api/v1/automation/webhooks/{endpoint_id}",
    }


def test_only_the_signed_routes_take_no_token():
    assert {_name(op) for op in OPERATIONS if "security" not in op[2]} == SIGNED


@pytest.mark.parametrize("operation", WITH_TOKEN, ids=_name)
def test_no_token_is_401_whatever_the_body(gateway, tenant, operation):
    method, path, spec = operation
    url, params = _url(tenant, path, spec)
    response = httpx.request(
        method, gateway.url + url, params=params, content=b"{bad", headers=JSON, timeout=30
    )
    _refusal(response, 401, None, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("operation", WITH_BODY, ids=_name)
def test_a_body_past_the_limit_is_413_when_it_streams_in_chunks(tenant, operation):
    method, path, spec = operation
    url, params = _url(tenant, path, spec)

    def chunks():  # no Content-Length: the size is only known as the bytes arrive
        yield b"["
        for _ in range(6):
            yield b" " * (1024 * 1024)
        yield b"]"

    response = tenant.client.request(method, url, params=params, content=chunks(), headers=JSON)
    _refusal(response, 413, "body", "too_large")


@pytest.mark.parametrize("operation", WITH_BODY, ids=_name)
@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data; boundary=x"])
def test_a_body_of_another_type_is_415(tenant, operation, content_type):
    method, path, spec = operation
    assert "application/json" in spec["requestBody"]["content"]
    url, params = _url(tenant, path, spec)
    response = tenant.client.request(
        method, url, params=params, content=b"{}", headers={"content-type": content_type}
    )
    _refusal(response, 415, "content-type", "unsupported_media_type")


@pytest.mark.parametrize("operation", WITH_BODY, ids=_name)
def test_a_body_without_a_type_is_415(tenant, operation):
    method, path, spec = operation
    url, params = _url(tenant, path, spec)
    request = tenant.client.build_request(method, url, params=params, content=b"{}")
    request.headers.pop("content-type", None)
    _refusal(tenant.client.send(request), 415, "content-type", "unsupported_media_type")


@pytest.mark.parametrize("operation", WITH_BODY, ids=_name)
@pytest.mark.parametrize("body", list(UNREADABLE.values()), ids=list(UNREADABLE))
def test_an_unreadable_body_is_400_naming_the_body(tenant, operation, body):
    method, path, spec = operation
    url, params = _url(tenant, path, spec)
    response = tenant.client.request(method, url, params=params, content=body, headers=JSON)
    _refusal(response, 400, "body", "malformed")


@pytest.mark.parametrize("operation", WITH_BODY, ids=_name)
def test_the_documented_refusals_are_the_ones_given(operation):
    assert {"400", "401", "413", "415"} <= set(operation[2]["responses"])
