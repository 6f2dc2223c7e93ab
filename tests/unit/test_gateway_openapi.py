"""The committed OpenAPI document is what the app serves, and it promises only what the app does."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.routing import APIRoute, iter_route_contexts

from api_gateway.app import API_PREFIX, create_app

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
SPEC_CALLS = [
    ("get", "config"), ("put", "update_config"), ("post", "run_now"), ("get", "current_run"),
    ("get", "history"), ("get", "logs"), ("get", "estimate"), ("get", "pipeline_overview"),
    ("get", "current_processing"), ("post", "pause"), ("post", "resume"), ("post", "cancel"),
]  # fmt: skip


def _served() -> dict:
    return create_app().openapi()


def test_committed_document_matches_the_app():
    assert json.loads(DOCUMENT.read_text()) == _served(), (
        "regenerate docs/openapi.json: python -c 'import json; from api_gateway.app import "
        "create_app; print(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))'"
    )


def test_every_spec_call_is_served_with_its_errors():
    paths = _served()["paths"]
    for method, name in SPEC_CALLS:
        operation = paths[f"{API_PREFIX}/{name}"][method]
        assert {"200", "400", "401", "404"} <= set(operation["responses"]), name
        assert operation["security"] == [{"HTTPBearer": []}]


def test_no_422_and_errors_are_json():
    for path in _served()["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"]
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    assert list(response["content"]) == ["application/json"]


def test_no_route_has_fastapi_read_its_body():
    """FastAPI reads a body parameter before any dependency, authentication included: routes
    read their bodies themselves, with api_gateway.request_body."""
    contexts = iter_route_contexts(create_app().routes)  # the included routers' routes too
    api_routes = {
        c.path: c.original_route for c in contexts if isinstance(c.original_route, APIRoute)
    }
    assert f"{API_PREFIX}/update_config" in api_routes
    for path, route in api_routes.items():
        assert route.body_field is None, f"{path}: read the body with api_gateway.request_body"


def test_every_body_is_documented_with_its_refusals():
    document = _served()
    schemas = document["components"]["schemas"]
    bodies = 0
    for path in document["paths"].values():
        for operation in path.values():
            if "requestBody" not in operation:
                continue
            bodies += 1
            assert {"400", "401", "413", "415"} <= set(operation["responses"])
            for content in operation["requestBody"]["content"].values():
                reference = content["schema"].get("$ref", "")
                assert reference.removeprefix("#/components/schemas/") in schemas or not reference
    assert bodies >= 2
