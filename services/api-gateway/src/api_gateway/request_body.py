"""Reading a request body the same way on every route that takes one, and only once the caller
and the parameters are known.

FastAPI reads and parses a body parameter before any dependency runs: a request without a token
would be told about its broken body, and a body that cannot be read (past the limit, not UTF-8,
nested too deep) would get FastAPI's own 400 without `field` or `code`. So no route declares a
body parameter (tests/unit/test_gateway_openapi.py checks); a route reads its body in its own
code with `read_text` or `read_json` and documents it with `json_request_body`. Refusals come in
this order, each an ErrorBody:

- 413 `too_large`: a declared Content-Length past the limit, before anything else (BodyLimit);
- 401 (or 403 for a console change without its CSRF token), then 400 for a parameter;
- 400 when there is no body at all;
- 415 `unsupported_media_type`: no Content-Type, or one the route does not take;
- 413 `too_large`: a body that streams in past the limit (BodyLimit);
- 400 `malformed`: not UTF-8, or not JSON (nested too deep, a number past any integer);
- 400 `invalid`: a value the route refuses, naming the field.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

import pydantic_core
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import ClientDisconnect

from api_gateway.body_limit import MAX_BODY_BYTES
from api_gateway.errors import ApiError, ErrorBody

JSON = "application/json"
Model = TypeVar("Model", bound=BaseModel)
REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": f"Body over {MAX_BODY_BYTES} bytes."},
    415: {"model": ErrorBody, "description": "No Content-Type, or one this call does not take."},
}
_DOCUMENTED: dict[str, type[BaseModel]] = {}
_SCHEMAS: dict[str, dict[str, Any]] = {}  # bodies no model describes, such as a CSV text


def malformed(detail: str) -> ApiError:
    return ApiError(400, detail, field="body", code="malformed")


async def read_text(request: Request, media_types: Collection[str]) -> tuple[str, str]:
    """The body's media type, one of `media_types` (`application/*+json` counts as JSON), and
    its text."""
    if not has_body(request):
        raise _missing()
    media_type = _media_type(request.headers.get("content-type", ""))
    if media_type not in media_types:
        raise ApiError(
            415,
            f"send the body as {' or '.join(media_types)}",
            field="content-type",
            code="unsupported_media_type",
        )
    try:
        raw = await request.body()  # BodyLimit refuses past MAX_BODY_BYTES while it streams in
    except ClientDisconnect:  # nobody hears the answer; it is not the server's failure either
        raise malformed("the connection closed before the whole body arrived") from None
    if not raw:
        raise _missing()
    try:
        return media_type, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reason = f"{exc.reason} at byte {exc.start}"
        raise malformed(f"the request body is not UTF-8: {reason}") from None


def parse_json(text: str) -> Any:
    """JSON as RFC 8259 has it: no NaN or Infinity, no lone surrogates (PostgreSQL could not
    store them), nested at most about 200 deep, integers of at most 4300 digits."""
    try:
        return pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:
        raise malformed(f"the request body is not valid JSON: {exc}") from None


async def read_json(request: Request, model: type[Model]) -> Model:
    """The JSON body as `model`; a value it refuses is a 400 naming the field, as FastAPI's
    own body validation would (see errors)."""
    document = parse_json((await read_text(request, (JSON,)))[1])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        located = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(located) from None


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads a `model` with `read_json`; `add_schemas` puts
    the model's schema into the document."""
    _DOCUMENTED[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def schema_ref(name: str, schema: dict[str, Any]) -> dict[str, str]:
    """A reference to `schema`, which `add_schemas` puts into the document as `name`: for a body
    that no model describes, documented under more than one media type."""
    _SCHEMAS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def add_schemas(document: dict[str, Any]) -> None:
    """The schemas of the models `json_request_body` refers to and of `schema_ref`, beside
    FastAPI's own."""
    if not _DOCUMENTED and not _SCHEMAS:
        return
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if _DOCUMENTED:
        _, generated = models_json_schema(
            [(model, "validation") for model in _DOCUMENTED.values()],
            ref_template="#/components/schemas/{model}",
        )
        schemas.update(generated.get("$defs", {}))
    schemas.update(_SCHEMAS)
    document["components"]["schemas"] = dict(sorted(schemas.items()))


def _missing() -> ApiError:
    return ApiError(400, "request body: Field required", field="body", code="invalid")


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is None:
        return "transfer-encoding" in request.headers
    return length.strip().lstrip("0") != ""


def _media_type(content_type: str) -> str:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type.startswith("application/") and media_type.endswith("+json"):
        return JSON
    return media_type
