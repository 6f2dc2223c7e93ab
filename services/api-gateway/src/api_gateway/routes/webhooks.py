"""Webhook endpoints of the caller's account: create, list, change, delete, the secret and its
rotation, a test event, the delivery log, and redelivery. The API only writes rows; the
webhooks process (`api-gateway webhooks`, ADR 19) sends them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.engine import Row

from api_gateway import request_body
from api_gateway.auth import CallerDep
from api_gateway.db import DbConn
from api_gateway.errors import ErrorBody
from api_gateway.params import MAX_ID, Limit, Offset, WholeNumber
from api_gateway.webhooks import endpoints
from api_gateway.webhooks.models import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    EndpointChange,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPage,
    SecretOut,
)
from api_gateway.webhooks.signing import ROTATION_OVERLAP
from contracts.envelope import utcnow

router = APIRouter(tags=["webhooks"])
MAX_OVERLAP = timedelta(days=7)
DEFAULT_OVERLAP_SECONDS = int(ROTATION_OVERLAP.total_seconds())
EndpointId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="A webhook endpoint of your account."), WholeNumber
]
DeliveryId = Annotated[UUID, Path(description="The delivery's `webhook-id`.")]
Enabled = Annotated[bool | None, Query(description="Only enabled (true) or disabled (false).")]
Status = Annotated[DeliveryStatus | None, Query(description="Only this status.")]
Overlap = Annotated[
    int,
    Query(
        ge=0,
        le=int(MAX_OVERLAP.total_seconds()),
        description="How long the secrets that sign now go on signing beside the new one, in "
        "seconds: 0 for a leaked secret.",
    ),
    WholeNumber,
]
CONFLICT = {
    409: {
        "model": ErrorBody,
        "description": "The endpoint is disabled (`endpoint_disabled`), or the delivery is being "
        "attempted now (`in_flight`).",
    }
}


def _policy(request: Request):
    return request.app.state.webhook_policy


def _endpoint(row: Row) -> EndpointOut:
    return EndpointOut.model_validate(row, from_attributes=True)


def _delivery(row: Row) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=EndpointCreated,
    openapi_extra=request_body.json_request_body(EndpointIn),
    responses=request_body.REFUSALS,
    summary="Register a webhook endpoint",
    description="Answers with the endpoint and its signing secret. The URL is checked now, on "
    "what its host resolves to: a refused or unresolvable address is a 400 naming `url`.",
)
async def create_endpoint(request: Request, caller: CallerDep) -> EndpointCreated:
    new = await request_body.read_json(request, EndpointIn)  # once the caller is known
    await endpoints.check_url(new.url, _policy(request))
    async with request.app.state.engine.begin() as conn:
        await endpoints.check_sites(conn, caller.account_id, new.site_ids)
        row, secret = await endpoints.create(conn, caller.account_id, new.model_dump(), utcnow())
    return EndpointCreated(**_endpoint(row).model_dump(), secret=secret)


@router.get("/webhooks", response_model=EndpointPage, summary="Webhook endpoints of the account")
async def list_endpoints(
    caller: CallerDep,
    conn: DbConn,
    enabled: Enabled = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> EndpointPage:
    total, rows = await endpoints.page(conn, caller.account_id, enabled, limit, offset)
    items = [_endpoint(row) for row in rows]
    return EndpointPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/webhooks/{endpoint_id}", response_model=EndpointOut, summary="One webhook endpoint")
async def get_endpoint(caller: CallerDep, conn: DbConn, endpoint_id: EndpointId) -> EndpointOut:
    return _endpoint(await endpoints.owned(conn, caller.account_id, endpoint_id))


@router.patch(
    "/webhooks/{endpoint_id}",
    response_model=EndpointOut,
    openapi_extra=request_body.json_request_body(EndpointChange),
    responses=request_body.REFUSALS,
    summary="Change, enable or disable a webhook endpoint",
)
async def update_endpoint(
    request: Request, caller: CallerDep, endpoint_id: EndpointId
) -> EndpointOut:
    change = await request_body.read_json(request, EndpointChange)
    changes = change.changes()
    if "url" in changes:
        await endpoints.check_url(change.url or "", _policy(request))
    async with request.app.state.engine.begin() as conn:
        endpoint = await endpoints.owned(conn, caller.account_id, endpoint_id, lock=True)
        await endpoints.check_sites(conn, caller.account_id, change.site_ids)
        return _endpoint(await endpoints.update(conn, endpoint, changes, utcnow()))


@router.delete(
    "/webhooks/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint, with its secrets and delivery log",
)
async def delete_endpoint(request: Request, caller: CallerDep, endpoint_id: EndpointId) -> Response:
    async with request.app.state.engine.begin() as conn:
        await endpoints.delete(conn, caller.account_id, endpoint_id)
    return Response(status_code=204)


def _secret(endpoint_id: int, held) -> SecretOut:
    current, others_end = endpoints.newest(held, utcnow())
    return SecretOut(
        endpoint_id=endpoint_id,
        secret=current.value,
        created_at=current.created_at,
        previous_expires_at=others_end,
    )


@router.get(
    "/webhooks/{endpoint_id}/secret",
    response_model=SecretOut,
    summary="The endpoint's signing secret",
    description="The owner may read it again at any time, as the create call showed it.",
)
async def get_secret(caller: CallerDep, conn: DbConn, endpoint_id: EndpointId) -> SecretOut:
    await endpoints.owned(conn, caller.account_id, endpoint_id)
    return _secret(endpoint_id, await endpoints.held_secrets(conn, endpoint_id))


@router.post(
    "/webhooks/{endpoint_id}/rotate_secret",
    response_model=SecretOut,
    summary="A new signing secret; the old one signs beside it for a while",
    description="Deliveries are signed with both until `previous_expires_at` (by default 24 "
    "hours from now; `overlap_seconds=0` ends the old one at once, for a leaked secret).",
)
async def rotate_secret(
    request: Request,
    caller: CallerDep,
    endpoint_id: EndpointId,
    overlap_seconds: Overlap = DEFAULT_OVERLAP_SECONDS,
) -> SecretOut:
    now = utcnow()
    async with request.app.state.engine.begin() as conn:
        await endpoints.owned(conn, caller.account_id, endpoint_id, lock=True)
        overlap = timedelta(seconds=overlap_seconds)
        held = await endpoints.rotate(conn, endpoint_id, now, overlap)
    return _secret(endpoint_id, held)


@router.post(
    "/webhooks/{endpoint_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    responses=CONFLICT,
    summary="Send the endpoint a test event",
    description="Enqueues one `webhook.test` delivery to this endpoint alone, whatever types it "
    "wants, with a new `webhook-id`; the webhooks process sends it like any other. Its body: "
    '`{"type": "webhook.test", "timestamp": ..., "data": {"endpoint_id": ..., "message": ...}}`.',
)
async def send_test(request: Request, caller: CallerDep, endpoint_id: EndpointId) -> DeliveryOut:
    async with request.app.state.engine.begin() as conn:
        endpoint = await endpoints.owned(conn, caller.account_id, endpoint_id, lock=True)
        return _delivery(await endpoints.enqueue_test(conn, endpoint, utcnow()))


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    summary="The endpoint's delivery log, newest first",
)
async def list_deliveries(
    caller: CallerDep,
    conn: DbConn,
    endpoint_id: EndpointId,
    status: Status = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DeliveryPage:
    await endpoints.owned(conn, caller.account_id, endpoint_id)
    total, rows = await endpoints.deliveries(conn, endpoint_id, status, limit, offset, utcnow())
    items = [_delivery(row) for row in rows]
    return DeliveryPage(
        endpoint_id=endpoint_id, total=total, limit=limit, offset=offset, items=items
    )


@router.get(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    summary="One delivery with its body and every attempt",
)
async def get_delivery(
    caller: CallerDep, conn: DbConn, endpoint_id: EndpointId, delivery_id: DeliveryId
) -> DeliveryDetail:
    await endpoints.owned(conn, caller.account_id, endpoint_id)
    row = await endpoints.delivery(conn, endpoint_id, delivery_id, utcnow())
    attempts = await endpoints.attempts(conn, delivery_id)
    log = [AttemptOut.model_validate(a, from_attributes=True) for a in attempts]
    return DeliveryDetail(**_delivery(row).model_dump(), body=row.body, attempt_log=log)


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=CONFLICT,
    summary="Send a delivery again, with the same webhook-id",
    description="Any delivery, a delivered one too, becomes pending and due now, with its body "
    "and `webhook-id` unchanged, so a receiver that keeps the ids it has seen can tell it is "
    "the same event. It gets a new round of attempts (the full retry schedule; `attempts` "
    "counts from 0 again, and the earlier attempts stay in the log). Refused with 409 while an "
    "attempt of it is in flight, and while the endpoint is disabled.",
)
async def redeliver(
    request: Request, caller: CallerDep, endpoint_id: EndpointId, delivery_id: DeliveryId
) -> DeliveryOut:
    now = utcnow()
    async with request.app.state.engine.begin() as conn:
        endpoint = await endpoints.owned(conn, caller.account_id, endpoint_id, lock=True)
        await endpoints.redeliver(conn, endpoint, delivery_id, now)
        return _delivery(await endpoints.delivery(conn, endpoint_id, delivery_id, now))
