"""The webhook rows as tests need them: what the webhooks process would have written (attempts,
outcomes, a lease), read back as stored, and removed again.

Endpoints made by tests point at TEST-NET-1 (192.0.2.0/24, RFC 5737): no address there is ever
routed, and a webhooks process not told otherwise refuses it, so a delivery a test leaves behind
on the shared database reaches nobody.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import sqlalchemy as sa

from api_gateway.webhooks.signing import Secret, new_secret
from contracts.db import tables as t

NOWHERE_NETWORK = "192.0.2.0/24"
NOWHERE = "https://192.0.2.10/hooks"

_e, _s, _d = t.webhook_endpoints.c, t.webhook_secrets.c, t.webhook_deliveries.c


def insert_endpoint(db: sa.Engine, account_id: int, url: str = NOWHERE, **values: object) -> int:
    """An endpoint with one secret, written directly (no address check): for a gateway whose
    settings refuse NOWHERE."""
    with db.begin() as conn:
        endpoint_id = conn.execute(
            sa.insert(t.webhook_endpoints)
            .values(account_id=account_id, url=url, event_types=["run.failed"], **values)
            .returning(_e.id)
        ).scalar_one()
        conn.execute(
            sa.insert(t.webhook_secrets).values(endpoint_id=endpoint_id, secret=new_secret())
        )
    return endpoint_id


def insert_delivery(
    db: sa.Engine,
    endpoint_id: int,
    status: str = "delivered",
    created_at: datetime | None = None,
    **values: object,
) -> UUID:
    """A delivery as the webhooks process leaves it; pending ones are due now. `values` set
    other columns, or these (`next_attempt_at`) otherwise."""
    now = datetime.now(UTC)
    row = {
        "id": uuid4(),
        "endpoint_id": endpoint_id,
        "event_type": "run.failed",
        "body": '{"type":"run.failed"}',
        "status": status,
        "next_attempt_at": now if status == "pending" else None,
        "created_at": created_at or now,
    }
    row.update(values)
    with db.begin() as conn:
        conn.execute(sa.insert(t.webhook_deliveries).values(row))
    return row["id"]


def insert_attempt(db: sa.Engine, delivery_id: UUID, attempt: int, **values: object) -> None:
    row = {"outcome": "failed", "status": 503, "latency_ms": 40, "at": datetime.now(UTC)}
    with db.begin() as conn:
        conn.execute(
            sa.insert(t.webhook_attempts).values(
                delivery_id=delivery_id, attempt=attempt, **{**row, **values}
            )
        )


def lease(
    db: sa.Engine, delivery_id: UUID, until: timedelta, retry_in: timedelta = timedelta(0)
) -> None:
    """What a claim does to a delivery: leased to one attempt until now + `until`, its next
    attempt due in `retry_in` (a webhooks process claims it once due and not leased)."""
    with db.begin() as conn:
        conn.execute(
            sa.update(t.webhook_deliveries)
            .where(_d.id == delivery_id)
            .values(
                status="pending",
                next_attempt_at=datetime.now(UTC) + retry_in,
                lease_until=datetime.now(UTC) + until,
                lease_token=uuid4(),
                attempts=_d.attempts + 1,
            )
        )


def delivery_row(db: sa.Engine, delivery_id: UUID | str) -> sa.Row | None:
    with db.connect() as conn:
        query = sa.select(t.webhook_deliveries).where(_d.id == UUID(str(delivery_id)))
        return conn.execute(query).first()


def endpoint_row(db: sa.Engine, endpoint_id: int) -> sa.Row | None:
    with db.connect() as conn:
        return conn.execute(sa.select(t.webhook_endpoints).where(_e.id == endpoint_id)).first()


def stored_secrets(db: sa.Engine, endpoint_id: int) -> list[Secret]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(_s.secret, _s.created_at, _s.expires_at).where(_s.endpoint_id == endpoint_id)
        )
        return [Secret(r.secret, r.created_at, r.expires_at) for r in rows]


def remove_endpoints(db: sa.Engine, account_id: int) -> None:
    """The account's endpoints, with their secrets, deliveries and attempts."""
    with db.begin() as conn:
        conn.execute(sa.delete(t.webhook_endpoints).where(_e.account_id == account_id))
