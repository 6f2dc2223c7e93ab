"""One error shape for every refusal, and the handlers that make FastAPI use it.

Validation failures answer 400 (not FastAPI's 422) with a message naming the field; a value the
database refuses (an out-of-range number that slipped through) answers 400 too: input never
causes a 500. `code` says which kind of refusal: `invalid` (a value), `malformed` (a body that
cannot be read), `too_large` (413), `unsupported_media_type` (415), `unauthorized`, `csrf`,
`not_allowed`, `active_run`, `insufficient_credits`, `timeout`, and for webhooks (409)
`endpoint_disabled` and `in_flight`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, for people.")
    field: str | None = Field(None, description="The parameter or body field at fault.")
    code: str | None = Field(None, description="Machine-readable reason, e.g. `active_run`.")
    active_run_id: str | None = None
    estimated_credits: int | None = None
    balance: int | None = None
    required: int | None = Field(
        None,
        description="Credits needed: to start, ceil(1.2 x estimate); to resume, the next item's.",
    )
    status: str | None = Field(None, description="Run status when a transition was refused.")


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.body = ErrorBody(detail=detail, **extra)


def bad_request(detail: str, **extra: Any) -> ApiError:
    return ApiError(400, detail, **extra)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Missing or invalid input, or a refused transition."},
    401: {"model": ErrorBody, "description": "No token, or an unknown or revoked one."},
    404: {
        "model": ErrorBody,
        "description": "No such site, run, item or webhook endpoint in your account.",
    },
}


def _json(status_code: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status_code, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    where = tuple(first.get("loc", ()))
    location = [str(part) for part in where if part not in ("query", "path", "body")]
    field = ".".join(location) or None
    message = first.get("msg", "invalid value")
    if field is None and where[:1] == ("body",):
        return f"request body: {message}", "body"
    return (f"{field}: {message}" if field else message), field


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _json(exc.status_code, exc.body, headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail, field = _validation_message(exc)
        return _json(400, ErrorBody(detail=detail, field=field, code="invalid"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return _json(exc.status_code, ErrorBody(detail=str(exc.detail)), headers)

    @app.exception_handler(DataError)
    async def on_data_error(_: Request, exc: DataError) -> JSONResponse:
        return _json(400, ErrorBody(detail="a value is out of range or malformed", code="invalid"))


def allowed_methods(request: Request) -> str:
    """Every method the request's path takes. Starlette's 405 names only the methods of the
    first route that matches the path, and a path with several methods has a route for each."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(request.url.path):
            methods |= route.methods
    return ", ".join(sorted(methods))
