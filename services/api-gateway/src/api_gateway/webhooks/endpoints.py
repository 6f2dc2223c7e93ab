"""The webhook tables as the API uses them: an account's endpoints, their secrets, the delivery
log, and the two rows the API enqueues itself (a test event, a redelivery). The webhooks process
sends them (store.py).

Every lookup goes through the caller's account: another account's endpoint is not found, exactly
like a missing one. A change to an endpoint or its deliveries locks the endpoint's row first, as
the delivery loop's claim and record do, so the two never wait on each other in opposite order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from api_gateway.errors import ApiError, bad_request, not_found
from api_gateway.webhooks import addresses, signing, store
from api_gateway.webhooks.addresses import AddressError, AddressPolicy
from api_gateway.webhooks.payloads import iso
from contracts.db import tables as t

RESOLVE_SECONDS = 5.0
DISABLED_BY_OWNER = "disabled by its owner"
TEST_TYPE = "webhook.test"

_e, _s, _d, _a = (
    t.webhook_endpoints.c,
    t.webhook_secrets.c,
    t.webhook_deliveries.c,
    t.webhook_attempts.c,
)


# --- addresses -------------------------------------------------------------------------------


async def _resolve(host: str, port: int) -> Sequence[str]:
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            return await addresses.system_resolve(host, port)
    except TimeoutError:
        raise OSError(f"no answer within {RESOLVE_SECONDS:g} s") from None


async def check_url(url: str, policy: AddressPolicy) -> None:
    """400 naming `url` unless it passes the rules the deliveries will be held to, resolved
    now; every attempt checks again."""
    try:
        await addresses.checked_addresses(addresses.check_url(url, policy), policy, _resolve)
    except AddressError as exc:
        raise bad_request(f"url: {exc.reason}", field="url", code="invalid") from None


async def check_sites(conn: AsyncConnection, account_id: int, site_ids: list[int] | None) -> None:
    """400 naming `site_ids` when one is not a site of the account (missing or another's: the
    same answer)."""
    if not site_ids:
        return
    found = await conn.execute(
        sa.select(t.sites.c.id).where(
            t.sites.c.id.in_(site_ids), t.sites.c.account_id == account_id
        )
    )
    unknown = sorted(set(site_ids) - set(found.scalars()))
    if unknown:
        listed = ", ".join(str(s) for s in unknown)
        raise bad_request(
            f"site_ids: no site {listed} in your account", field="site_ids", code="invalid"
        )


# --- endpoints -------------------------------------------------------------------------------


async def create(
    conn: AsyncConnection, account_id: int, values: dict[str, object], now: datetime
) -> tuple[Row, str]:
    """The new endpoint and its first secret."""
    endpoint = (
        await conn.execute(
            sa.insert(t.webhook_endpoints)
            .values(account_id=account_id, created_at=now, **values)
            .returning(t.webhook_endpoints)
        )
    ).one()
    secret = signing.new_secret()
    await conn.execute(
        sa.insert(t.webhook_secrets).values(endpoint_id=endpoint.id, secret=secret, created_at=now)
    )
    return endpoint, secret


async def page(
    conn: AsyncConnection, account_id: int, enabled: bool | None, limit: int, offset: int
) -> tuple[int, list[Row]]:
    where = [_e.account_id == account_id]
    if enabled is not None:
        where.append(_e.enabled.is_(enabled))
    total = await conn.scalar(sa.select(sa.func.count()).where(*where))
    rows = await conn.execute(
        sa.select(t.webhook_endpoints).where(*where).order_by(_e.id).limit(limit).offset(offset)
    )
    return total or 0, list(rows)


async def owned(
    conn: AsyncConnection, account_id: int, endpoint_id: int, lock: bool = False
) -> Row:
    """The account's endpoint, locked for the transaction when `lock`; else 404."""
    query = sa.select(t.webhook_endpoints).where(_e.id == endpoint_id, _e.account_id == account_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise not_found(f"webhook endpoint {endpoint_id}")
    return row


async def update(
    conn: AsyncConnection, endpoint: Row, changes: dict[str, object], now: datetime
) -> Row:
    """Apply `changes` to a locked endpoint. Disabling goes the way the delivery loop's does
    (its pending deliveries fail); enabling clears why and since when it was failing."""
    values = {k: v for k, v in changes.items() if k != "enabled"}
    enabled = changes.get("enabled")
    if enabled is False and endpoint.enabled:
        await conn.run_sync(lambda c: store.disable(c, endpoint.id, DISABLED_BY_OWNER, now))
    elif enabled is True and not endpoint.enabled:
        cleared = {"disabled_reason": None, "disabled_at": None, "failing_since": None}
        values |= {"enabled": True, **cleared}
    if values:
        await conn.execute(
            sa.update(t.webhook_endpoints).where(_e.id == endpoint.id).values(**values)
        )
    return (await conn.execute(sa.select(t.webhook_endpoints).where(_e.id == endpoint.id))).one()


async def delete(conn: AsyncConnection, account_id: int, endpoint_id: int) -> None:
    """The endpoint goes with its secrets, deliveries and attempts (the foreign keys cascade);
    an attempt in flight then records nothing."""
    gone = await conn.execute(
        sa.delete(t.webhook_endpoints)
        .where(_e.id == endpoint_id, _e.account_id == account_id)
        .returning(_e.id)
    )
    if gone.first() is None:
        raise not_found(f"webhook endpoint {endpoint_id}")


# --- secrets ---------------------------------------------------------------------------------


async def held_secrets(conn: AsyncConnection, endpoint_id: int) -> tuple[signing.Secret, ...]:
    held = await conn.run_sync(lambda c: store.secrets_of(c, [endpoint_id]))
    return held.get(endpoint_id, ())


def newest(held: Sequence[signing.Secret], now: datetime) -> tuple[signing.Secret, datetime | None]:
    """The secret that signs now and was made last, and when the last other one that signs now
    stops (None when none does). ApiError 404 when none signs (not made by this API)."""
    signing_now = sorted((s for s in held if s.signs_at(now)), key=lambda s: s.created_at)
    if not signing_now:
        raise ApiError(404, "no secret signs now: rotate it to get a new one")
    others = [s.expires_at for s in signing_now[:-1] if s.expires_at is not None]
    return signing_now[-1], max(others, default=None)


async def rotate(
    conn: AsyncConnection, endpoint_id: int, now: datetime, overlap: timedelta
) -> list[signing.Secret]:
    """A new secret from now on; the ones that sign now stop at `now + overlap` at the latest.
    Run it with the endpoint locked, so two rotations do not interleave."""
    after = signing.rotate(
        await held_secrets(conn, endpoint_id), signing.new_secret(), now, overlap
    )
    await conn.execute(sa.delete(t.webhook_secrets).where(_s.endpoint_id == endpoint_id))
    await conn.execute(
        sa.insert(t.webhook_secrets),
        [
            {
                "endpoint_id": endpoint_id,
                "secret": s.value,
                "created_at": s.created_at,
                "expires_at": s.expires_at,
            }
            for s in after
        ],
    )
    return after


# --- deliveries ------------------------------------------------------------------------------


def _in_flight(now: datetime) -> sa.ColumnElement[bool]:
    leased = sa.and_(_d.status == "pending", _d.lease_until > now)
    return sa.func.coalesce(leased, sa.false()).label("in_flight")


def _delivery_columns(now: datetime) -> list:
    return [*(c for c in t.webhook_deliveries.c if c.name not in ("body", "lease_token")),
            _in_flight(now)]  # fmt: skip


def test_body(endpoint_id: int, now: datetime) -> str:
    """The `{type, timestamp, data}` body of a test event, in payloads' compact JSON."""
    data = {"endpoint_id": endpoint_id, "message": "A test event: nothing happened."}
    document = {"type": TEST_TYPE, "timestamp": iso(now), "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


async def enqueue_test(conn: AsyncConnection, endpoint: Row, now: datetime) -> Row:
    """One pending `webhook.test` delivery to this endpoint alone, due now, whatever types it
    wants. Each request is a new event, so a new `webhook-id`. 409 when the endpoint is
    disabled: the delivery loop sends nothing to it, and its pending rows fail."""
    _enabled_or_409(endpoint)
    delivery_id = uuid4()
    await conn.execute(
        sa.insert(t.webhook_deliveries).values(
            id=delivery_id,
            endpoint_id=endpoint.id,
            event_type=TEST_TYPE,
            body=test_body(endpoint.id, now),
            status="pending",
            next_attempt_at=now,
            created_at=now,
        )
    )
    return await delivery(conn, endpoint.id, delivery_id, now)


async def deliveries(
    conn: AsyncConnection,
    endpoint_id: int,
    status: str | None,
    limit: int,
    offset: int,
    now: datetime,
) -> tuple[int, list[Row]]:
    """The endpoint's delivery log, newest first."""
    where = [_d.endpoint_id == endpoint_id]
    if status is not None:
        where.append(_d.status == status)
    total = await conn.scalar(
        sa.select(sa.func.count()).select_from(t.webhook_deliveries).where(*where)
    )
    rows = await conn.execute(
        sa.select(*_delivery_columns(now))
        .where(*where)
        .order_by(_d.created_at.desc(), _d.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return total or 0, list(rows)


async def delivery(
    conn: AsyncConnection, endpoint_id: int, delivery_id: UUID, now: datetime
) -> Row:
    """One delivery of the endpoint, with its body; else 404."""
    row = (
        await conn.execute(
            sa.select(*_delivery_columns(now), _d.body).where(
                _d.id == delivery_id, _d.endpoint_id == endpoint_id
            )
        )
    ).first()
    if row is None:
        raise not_found(f"delivery {delivery_id}")
    return row


async def attempts(conn: AsyncConnection, delivery_id: UUID) -> list[Row]:
    """A delivery's attempts, oldest first."""
    query = sa.select(t.webhook_attempts).where(_a.delivery_id == delivery_id)
    return list(await conn.execute(query.order_by(_a.id)))


async def redeliver(conn: AsyncConnection, endpoint: Row, delivery_id: UUID, now: datetime) -> None:
    """Pending again, due now, with the same `webhook-id` and body, in a new round of attempts
    (the full retry schedule; the attempts of earlier rounds stay in the log). Any delivery may
    be sent again, a delivered one too. 409 while an attempt of it is in flight, or when the
    endpoint is disabled. Run it with the endpoint locked."""
    _enabled_or_409(endpoint)
    again = await conn.execute(
        sa.update(t.webhook_deliveries)
        .where(
            _d.id == delivery_id,
            _d.endpoint_id == endpoint.id,
            sa.or_(_d.lease_until.is_(None), _d.lease_until <= now),
        )
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            lease_until=None,
            lease_token=None,
        )
        .returning(_d.id)
    )
    if again.first() is not None:
        return
    await delivery(conn, endpoint.id, delivery_id, now)  # 404 when it is not the endpoint's
    raise ApiError(
        409,
        f"delivery {delivery_id} is being attempted now; ask again once the attempt is over",
        code="in_flight",
    )


def _enabled_or_409(endpoint: Row) -> None:
    if not endpoint.enabled:
        raise ApiError(
            409,
            f"webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); "
            "enable it first",
            code="endpoint_disabled",
        )
